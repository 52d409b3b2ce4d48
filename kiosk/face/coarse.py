"""A coarse int8 index that narrows a large gallery to a few candidates for exact re-ranking.

Scoring 100,000 float32 templates reads 200 MB per search (~10 ms here, far more on a Pi). The
index keeps each template projected onto the gallery's top principal directions (64 of 512) and
quantised to int8: 6.4 MB, scored by onnxruntime's integer matmul. The rows are stored offset by
``ZERO_POINT`` as uint8 (MatMulInteger's zero point takes it back off, so the dot products are
exactly the int8 ones): its u8 x s8 kernel is onnxruntime's fast path, about twice the s8 x s8 one
on x86. The best ``rerank_k`` rows of the integer scores are picked in the same graph (TopK, unsorted:
the candidates are re-scored anyway; at 100,000 rows 0.8 ms for the whole pass against 2.0 ms with the
scores handed to numpy's argpartition, which took longer than the matmul), then re-scored exactly
against the full vectors, so the scores returned are exact; a true best template is missed only if the projection
ranks it below ``rerank_k`` others. On real embeddings padded with realistic distractors (100,000
and 300,000 templates) at most 35 coarse scores were above the exact best row's, and at most 49
above the best other employee's row (which the margin needs): well inside the default ``rerank_k``
of 128 (`kiosk bench gallery` reports how often the gallery agrees with the exact scan;
tests/test_face_gallery.py checks it on the photos of ../shared/faces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # onnx and onnxruntime load when a big gallery builds its index, not with every gallery
    import onnxruntime as ort

COARSE_DIM = 64
PCA_SAMPLE = 20000
INT8_MAX = 127
HEADROOM = 1.25
ZERO_POINT = 128


def _candidates_session(threads: int) -> ort.InferenceSession:
    """dots = (rows(uint8, n x d) - ZERO_POINT) . query(int8, d x 1) as int32, and the row numbers of its
    ``k`` largest (unsorted)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MatMulInteger", ["rows", "query", "zero_point"], ["dots"]),
             helper.make_node("Reshape", ["dots", "one_row"], ["scores"]),
             helper.make_node("TopK", ["scores", "k"], ["best", "rows_best"], axis=-1, largest=1, sorted=0)]
    graph = helper.make_graph(
        nodes, "coarse_candidates",
        [helper.make_tensor_value_info("rows", TensorProto.UINT8, ["n", COARSE_DIM]),
         helper.make_tensor_value_info("query", TensorProto.INT8, [COARSE_DIM, 1]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("rows_best", TensorProto.INT64, [1, "k"])],
        initializer=[helper.make_tensor("zero_point", TensorProto.UINT8, [], [ZERO_POINT]),
                     helper.make_tensor("one_row", TensorProto.INT64, [2], [1, -1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class CoarseIndex:
    """int8 projections of the gallery rows (stored + ZERO_POINT), kept in step with the gallery's row order."""

    def __init__(self, vectors: np.ndarray, capacity: int, threads: int = 2) -> None:
        rng = np.random.default_rng(0)
        sample = vectors if len(vectors) <= PCA_SAMPLE else vectors[rng.choice(len(vectors), PCA_SAMPLE, False)]
        _, eigvecs = np.linalg.eigh((sample.T @ sample).astype(np.float64))
        self.basis = np.ascontiguousarray(eigvecs[:, ::-1][:, :COARSE_DIM], dtype=np.float32)
        spread = float(np.abs(sample @ self.basis).max()) if len(sample) else 1.0
        self.scale = INT8_MAX / (spread * HEADROOM or 1.0)
        self.rows = np.full((capacity, COARSE_DIM), ZERO_POINT, np.uint8)
        self.rows[: len(vectors)] = self._stored(self._quantise(vectors @ self.basis, self.scale))
        self._session = _candidates_session(threads)

    @staticmethod
    def _quantise(values: np.ndarray, scale: float) -> np.ndarray:
        return np.clip(np.rint(values * scale), -INT8_MAX, INT8_MAX).astype(np.int8)

    @staticmethod
    def _stored(quantised: np.ndarray) -> np.ndarray:
        """int8 values as stored rows: + ZERO_POINT, as uint8 (flipping the sign bit does exactly that)."""
        return quantised.view(np.uint8) ^ np.uint8(ZERO_POINT)

    def grow(self, capacity: int) -> None:
        rows = np.full((capacity, COARSE_DIM), ZERO_POINT, np.uint8)
        rows[: len(self.rows)] = self.rows
        self.rows = rows

    def set_row(self, row: int, vector: np.ndarray) -> None:
        self.rows[row] = self._stored(self._quantise(vector @ self.basis, self.scale))

    def move_row(self, src: int, dst: int) -> None:
        self.rows[dst] = self.rows[src]

    def candidates(self, query: np.ndarray, count: int, k: int) -> np.ndarray:
        """Row numbers of the ``k`` best coarse scores among the first ``count`` rows, ascending (the
        order the exact scan sees them in, so equal exact scores resolve the same way)."""
        if k >= count:
            return np.arange(count)
        projected = query @ self.basis
        peak = float(np.abs(projected).max()) or 1.0
        q8 = self._quantise(projected, INT8_MAX / peak).reshape(COARSE_DIM, 1)
        (best,) = self._session.run(None, {"rows": self.rows[:count], "query": q8, "k": np.array([k], np.int64)})
        return np.sort(best.ravel())
