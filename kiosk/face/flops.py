"""The compute floor of a frame: model GFLOPs divided by this machine's measured sgemm GFLOPS."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

SGEMM_N = 1024
SGEMM_REPEATS = 5


def model_gflops(path: Path, input_shape: tuple[int, ...]) -> float:
    """Multiply-add FLOPs (x2) of every Conv/Gemm/MatMul for one input of ``input_shape``.

    Output shapes are taken from a real run (each layer's output exposed as a graph output),
    because shape inference cannot see through the detector's dynamic resize.
    """
    model = onnx.load(str(path))
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in weights]
    present = {o.name for o in model.graph.output}
    for node in layers:
        if node.output[0] not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=node.output[0]))
            present.add(node.output[0])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros(input_shape, np.float32)}
    outputs = session.run([n.output[0] for n in layers], feed)
    total = 0
    for node, out in zip(layers, outputs, strict=True):
        w = weights[node.input[1]]
        if node.op_type == "Conv":
            total += 2 * int(np.prod(out.shape[1:])) * int(np.prod(w[1:]))
        else:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            total += 2 * int(np.prod(out.shape)) * int(w[1] if trans_b else w[0])
    return total / 1e9


def sgemm_gflops() -> float:
    """Best-of-five float32 matrix multiply rate of this machine, in GFLOPS (numpy's BLAS)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
    b = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(SGEMM_REPEATS):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * SGEMM_N**3 / best / 1e9
