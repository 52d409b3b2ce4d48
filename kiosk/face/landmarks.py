"""The 106-point landmark stage (insightface 2d106det), used by the liveness check."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from kiosk.base.errors import ModelError

log = logging.getLogger(__name__)

CROP_SCALE = 1.5  # the model was trained on a square crop 1.5x the face box


class Landmarks106:
    """Runs 2d106det on a face box: (106, 2) points in frame coordinates."""

    def __init__(self, engine) -> None:  # noqa: ANN001 - FaceEngine
        from kiosk.face.engine import load_model, session_options
        from kiosk.face.insightface_models import Landmark106
        pack = engine.pack
        if pack.landmarks is None:
            raise ModelError(f"the model pack in {pack.directory} has no 106-point landmark model (2d106det.onnx), "
                             "which the blink liveness check needs",
                             fix="Add 2d106det.onnx to the pack, or set liveness.enabled = false.")
        self.model = load_model(pack.landmarks, "landmark", pack, session_options(engine.cfg), Landmark106,
                                engine.graphs)
        self.size = int(self.model.input_size[0])

    def __call__(self, frame: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = (float(v) for v in bbox[:4])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        scale = self.size / (max(x2 - x1, y2 - y1) * CROP_SCALE)
        # insightface's face_align.transform without rotation: scaled about the box centre, centred in the crop.
        matrix = np.array([[scale, 0.0, self.size / 2 - cx * scale], [0.0, scale, self.size / 2 - cy * scale]])
        crop = cv2.warpAffine(frame, matrix, (self.size, self.size), borderValue=0.0)
        pred = self.model.run([crop], (self.size, self.size))[0].reshape(-1, 2)[-106:]
        pred = (pred + 1) * (self.size // 2)
        back = cv2.invertAffineTransform(matrix)
        return (np.hstack([pred, np.ones((len(pred), 1), np.float32)]) @ back.T).astype(np.float32)
