"""Liveness: a natural blink (active check, 106-point landmarks) and an optional passive model.

What the active check stops: printed photos and photos on a screen, held still or moved, tilted or
bent, because a flat picture's eyes never close on their own. Eye openness is measured relative to
the face's own proportions, so tilting a photo (which squashes eyes and face alike) is not a blink.
What it does NOT stop: a video replay of the person blinking (a phone or tablet playing a clip),
a mask with cut-out eyes, or a deep-fake stream. The passive model, when supplied, is the defence
for screens; a card_and_face policy raises the bar further.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from kiosk.base.errors import KioskError
from kiosk.face.config import LivenessConfig

log = logging.getLogger(__name__)

# Index groups of insightface's 2d106det landmark model (found on blink videos: the upper lid
# points 40-42 / 94-96 drop during a blink).
LEFT_EYE = np.arange(33, 43)
RIGHT_EYE = np.arange(87, 97)
MOUTH = np.arange(52, 72)


def eye_openness(lmk: np.ndarray) -> float:
    """Both eyes' height/width, divided by the face's height/width (so a tilted photo stays constant).

    Face width is the distance between the eye centres; face height the distance from their
    midpoint to the mouth centre.
    """
    lmk = np.asarray(lmk, dtype=np.float32)
    ratios = []
    centres = []
    for idx in (LEFT_EYE, RIGHT_EYE):
        eye = lmk[idx]
        width = float(np.ptp(eye[:, 0])) or 1e-6
        ratios.append(float(np.ptp(eye[:, 1])) / width)
        centres.append(eye.mean(axis=0))
    face_w = float(np.linalg.norm(centres[1] - centres[0])) or 1e-6
    face_h = float(np.linalg.norm(lmk[MOUTH].mean(axis=0) - (centres[0] + centres[1]) / 2)) or 1e-6
    return float(np.mean(ratios)) / (face_h / face_w)


def yaw_proxy_deg(kps: np.ndarray) -> float:
    """Rough yaw from the 5 detector keypoints: the nose's offset from the eyes' midline."""
    kps = np.asarray(kps, dtype=np.float32)
    eye_mid = (kps[0] + kps[1]) / 2
    inter = float(np.linalg.norm(kps[1] - kps[0])) or 1e-6
    return float(np.degrees(np.arctan2(kps[2][0] - eye_mid[0], inter)))


class Verdict(StrEnum):
    PENDING = "pending"
    LIVE = "live"
    SPOOF = "spoof"


@dataclass
class BlinkDetector:
    """Per walk-up state machine over eye openness: open baseline -> dip -> recovery = one blink."""

    cfg: LivenessConfig
    history: list[float] = field(default_factory=list)
    closed_since: float | None = None
    blinks: int = 0

    def baseline(self) -> float | None:
        if len(self.history) < self.cfg.min_baseline_frames:
            return None
        return float(np.percentile(self.history[-30:], 80))

    def update(self, openness: float, t_s: float) -> int:
        """Feed one frame's openness at time ``t_s``; returns the number of blinks seen so far."""
        base = self.baseline()
        if base is not None and self.closed_since is None and openness < base * self.cfg.closed_ratio:
            self.closed_since = t_s
            return self.blinks
        if self.closed_since is not None:
            if openness > (base or openness) * self.cfg.reopen_ratio:
                if t_s - self.closed_since <= self.cfg.max_blink_s:
                    self.blinks += 1
                self.closed_since = None
            elif t_s - self.closed_since > self.cfg.max_blink_s:
                return self.blinks  # a long closure (looking down) is not a blink; wait for reopening
            else:
                return self.blinks
        self.history.append(openness)
        return self.blinks


class PassiveModel:
    """insightface's passive liveness adapter (80x80 ONNX), when the operator supplies a model."""

    def __init__(self, path: Path, threshold: float, sess_options: object | None = None) -> None:
        if not path.is_file():
            raise KioskError(f"liveness model {path} does not exist",
                             fix="Fix liveness.passive_model, or remove it to run the active check only.")
        from insightface.addons.liveness import Liveness
        try:
            self.model = Liveness(str(path), threshold=threshold, providers=["CPUExecutionProvider"],
                                  sess_options=sess_options)
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            raise KioskError(f"liveness model {path} cannot be loaded: {exc}",
                             fix="Supply an insightface passive liveness model (float [N,3,80,80] -> [N]).") from None

    def score(self, image: np.ndarray, kps: np.ndarray) -> float | None:
        result = self.model.predict(image, kps)
        return result["live_score"] if result["status"] == "ok" else None


class LivenessCheck:
    """One walk-up's liveness: active blink (and optional head turn), plus the passive model if any."""

    def __init__(self, cfg: LivenessConfig, passive: PassiveModel | None = None) -> None:
        self.cfg = cfg
        self.passive = passive
        self.reset()

    def reset(self) -> None:
        self.started: float | None = None
        self.blink = BlinkDetector(self.cfg)
        self.yaws: list[float] = []
        self.passive_scores: list[float] = []

    def update(self, t_s: float, lmk106: np.ndarray, kps: np.ndarray, image: np.ndarray | None = None) -> Verdict:
        """Feed one frame of the walk-up; LIVE once every required check has passed."""
        if not self.cfg.enabled:
            return Verdict.LIVE
        if self.started is None:
            self.started = t_s
        blinks = self.blink.update(eye_openness(lmk106), t_s)
        self.yaws.append(yaw_proxy_deg(kps))
        if self.passive is not None and image is not None:
            score = self.passive.score(image, kps)
            if score is not None:
                self.passive_scores.append(score)
        if blinks >= 1 and self._turned() and self._passive_ok():
            return Verdict.LIVE
        if t_s - self.started > self.cfg.window_s:
            return Verdict.SPOOF
        return Verdict.PENDING

    def _turned(self) -> bool:
        if not self.cfg.require_head_turn:
            return True
        return bool(self.yaws) and max(self.yaws) - min(self.yaws) >= self.cfg.head_turn_deg

    def _passive_ok(self) -> bool:
        if self.passive is None:
            return True
        return len(self.passive_scores) >= 3 and float(np.median(self.passive_scores)) >= self.cfg.passive_threshold
