"""Plain data passed between the face stages: a detected face and a quality report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the frame it was found in.

    ``kps`` are five landmarks: left eye, right eye (as seen in the image), nose tip, left and
    right mouth corner.
    """

    bbox: np.ndarray
    kps: np.ndarray
    det_score: float

    @property
    def width(self) -> float:
        return float(self.bbox[2] - self.bbox[0])

    @property
    def height(self) -> float:
        return float(self.bbox[3] - self.bbox[1])

    @property
    def center(self) -> tuple[float, float]:
        return float(self.bbox[0] + self.bbox[2]) / 2, float(self.bbox[1] + self.bbox[3]) / 2

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.kps[1] - self.kps[0]))

    def shifted(self, dx: float, dy: float) -> Face:
        """The same face in a frame whose origin is moved by (dx, dy)."""
        offset = np.array([dx, dy], dtype=np.float32)
        return Face(self.bbox + np.tile(offset, 2), self.kps + offset, self.det_score)


@dataclass(frozen=True)
class QualityReport:
    """The quality gate's verdict: ``reasons`` are stable names the enrolment UI translates.

    Reasons: too_small, blurry, pose, too_dark, too_bright, occluded, cut_off, mask, sunglasses.
    ``metrics`` holds the measured values (eye_distance_px, sharpness (of the brightened face when dark),
    yaw_deg, pitch_deg, brightness, face_score, outside_ratio, and unless quality.covered_faces is off
    eyes_dark, eyes_flat, lower_colour, lower_light, lower_spread).
    """

    ok: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """A 0..1 figure of merit stored with a template (higher is better)."""
        m = self.metrics
        parts = [min(1.0, m.get("eye_distance_px", 0) / 60), min(1.0, m.get("sharpness", 0) / 300),
                 max(0.0, 1 - abs(m.get("yaw_deg", 90)) / 60), m.get("face_score", 0)]
        return round(float(np.mean(parts)), 3)
