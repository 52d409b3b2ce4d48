"""The quality gate: size, sharpness, pose, light, occlusion, cut-off, a mask and sunglasses, each with a named reason.

``assess(frame, face, aligned, cfg) -> QualityReport`` is a pure function of the frame, the
detected face, its aligned 112x112 crop and the [quality] thresholds. Pose is estimated from the
five landmarks with a simple head model (nose tip in front of the eye/mouth plane), good to a few
degrees near frontal, which is all a gate needs.

Two sets of limits for size, sharpness and pose, one rule: an enrolment photo or guided-capture frame must
make a good template (min_sharpness, min_eye_distance_px, max_yaw_deg, max_pitch_deg); a walk-up frame
(``walkup=True``) is refused only where the recogniser fails anyway (the walkup_ limits, measured with
`kiosk bench robustness`: a sigma-3 blur or 20 px between the eyes is still recognised).

The gate refuses only what hurts recognition, for the right reason: sharpness is judged on the
face with its contrast normalised (a dark face has little contrast, so its raw Laplacian variance
is as low as a blurred one's: at 30 % brightness 193 of 200 frames used to be refused as *blurry*),
so a dark face is brightened first (``lit``: a gain to a mean grey of LIT_MEAN, measured better than
CLAHE on ../shared/faces), judged for sharpness as brightened and embedded as brightened; only a face
too dark for the recogniser even then is ``too_dark``.

A mask or sunglasses are found from regions of the aligned crop (``covering``): sunglasses make the eyes
dark and flat against the nose and cheeks; a mask makes the mouth and chin unlike, and flatter than, the
skin under the eyes. They are reasons like the others (an enrolment photo with them is refused), but a
walk-up still tries such a face and refuses it only when it is not recognised (kiosk.face.walkup,
``quality.covered_faces``): the recogniser knows many masked faces, and a refusal must not cost more right
answers than it saves wrong ones (`kiosk bench robustness`). So does a walk-up frame refused only as
blurry, turned (pose) or occluded (``quality.walkup_try_reasons``, ``worth_trying``): the reason is shown
only when the face is not recognised.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from kiosk.face.config import QualityConfig
from kiosk.face.types import Face, QualityReport

# Head model, in units of half the distance between the eyes: how far the nose tip stands in
# front of the eye/mouth plane (adult average ~30 mm vs ~31 mm half-IPD) and how far the mouth is
# below the eyes; and where the detector's nose point sits between the eye line and the mouth line
# on a level face (the median over the 338 photos of ../shared/faces).
NOSE_DEPTH = 1.0
EYE_TO_MOUTH = 2.31
FRONTAL_NOSE_FRACTION = 0.56
# Central part of the aligned 112x112 crop: the face without hair and background.
INNER = (slice(24, 100), slice(20, 92))
# A dark face is brightened to this mean grey level before it is judged for sharpness and embedded.
LIT_MEAN = 110.0
# Regions of the aligned crop (rows, columns) for the mask and sunglasses checks: on the ArcFace template
# the eyes are at (52, 38) and (52, 74), the nose tip at (72, 56), the mouth corners at (92, 42) and (92, 71).
EYES = ((slice(47, 58), slice(30, 47)), (slice(47, 58), slice(65, 82)))
NOSE_AND_CHEEKS = (slice(64, 78), slice(28, 84))           # below where sunglasses end
LOWER_FACE = (slice(80, 104), slice(38, 74))               # mouth and chin: under a mask
UPPER_FACE = ((slice(56, 63), slice(30, 82)), (slice(42, 58), slice(52, 60)))  # under and between the eyes
# Sunglasses: the eyes much darker than the nose and cheeks, and flat (no eye whites, iris or lashes).
# Measured with `kiosk bench robustness` (synthetic sunglasses) and on the photos of ../shared/faces: the
# eye regions' median/median brightness ratio was below 0.45 and texture ratio below 0.6 for 98 % of
# faces with sunglasses and for none of the 338 clean photos but the one showing real sunglasses.
SUNGLASSES_DARK_BELOW = 0.45
SUNGLASSES_FLAT_BELOW = 0.6
# A mask: mouth and chin unlike the skin under and between the eyes, in colour (Lab a*b* distance) or in
# brightness (relative), and flatter than it (a beard is unlike the skin too, but not flat).
MASK_COLOUR_ABOVE = 18.0
MASK_LIGHT_ABOVE = 0.45
MASK_FLAT_BELOW = 0.9
COVERED = ("mask", "sunglasses")
"""Reasons for something worn over the face: the walk-up may still try to recognise it (quality.covered_faces)."""


def _derolled(kps: np.ndarray) -> np.ndarray:
    """Landmarks rotated so the eyes are level, with the midpoint of the eyes at the origin."""
    left, right = kps[0], kps[1]
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    cos, sin = math.cos(-angle), math.sin(-angle)
    rot = np.array([[cos, -sin], [sin, cos]], dtype=np.float64)
    return (kps - (left + right) / 2) @ rot.T


def estimate_pose(kps: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from five landmarks; positive yaw = nose towards image right."""
    pts = _derolled(np.asarray(kps, dtype=np.float64))
    half_eye = max(1e-6, (pts[1, 0] - pts[0, 0]) / 2)
    nose = pts[2]
    mouth_y = (pts[3, 1] + pts[4, 1]) / 2
    yaw = math.degrees(math.atan((nose[0] / half_eye) / NOSE_DEPTH))
    fraction = nose[1] / mouth_y if mouth_y > 1e-6 else FRONTAL_NOSE_FRACTION
    pitch = math.degrees(math.atan((FRONTAL_NOSE_FRACTION - fraction) * EYE_TO_MOUTH / NOSE_DEPTH))
    return yaw, pitch


def outside_ratio(face: Face, frame_shape: tuple[int, ...]) -> float:
    """Fraction of the face box that lies outside the frame."""
    h, w = frame_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    inside = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
    return max(0.0, 1 - inside / area)


def _landmarks_inside(face: Face, frame_shape: tuple[int, ...]) -> bool:
    h, w = frame_shape[:2]
    k = face.kps
    return bool(np.all(k[:, 0] >= 0) and np.all(k[:, 0] < w) and np.all(k[:, 1] >= 0) and np.all(k[:, 1] < h))


def inner_brightness(aligned: np.ndarray) -> float:
    """Mean grey level of the central face region of an aligned crop."""
    return float(cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)[INNER].mean())


def lit(aligned: np.ndarray, cfg: QualityConfig) -> np.ndarray:
    """The aligned crop as the recogniser should see it: a face darker than ``low_light_below`` is
    brightened by a gain to a mean of LIT_MEAN (at most ``max_gain``); others are returned as they are."""
    brightness = inner_brightness(aligned)
    if brightness >= cfg.low_light_below:
        return aligned
    gain = min(cfg.max_gain, LIT_MEAN / max(brightness, 1.0))
    return cv2.convertScaleAbs(aligned, alpha=gain)


def _pixels(image: np.ndarray, regions: tuple) -> np.ndarray:
    """The pixels of one region (rows, columns) or of several, as one array of values (or of Lab triples)."""
    if isinstance(regions[0], slice):
        regions = (regions,)
    return np.concatenate([image[r].reshape(-1, *image.shape[2:]) for r in regions])


def covering(seen: np.ndarray) -> dict[str, float]:
    """The numbers the mask and sunglasses checks read, from the aligned crop as the recogniser sees it:
    the eyes' brightness and texture against the nose and cheeks, and the lower face's colour, brightness
    and spread against the skin under and between the eyes."""
    lab = cv2.cvtColor(seen, cv2.COLOR_BGR2LAB).astype(np.float32)
    light = lab[..., 0]
    edges = np.abs(cv2.Laplacian(light, cv2.CV_32F))
    cheeks = float(np.median(light[NOSE_AND_CHEEKS]))
    upper, lower = _pixels(lab, UPPER_FACE), _pixels(lab, LOWER_FACE)
    upper_light = float(np.median(upper[:, 0]))
    colour = np.linalg.norm(np.median(lower[:, 1:], axis=0) - np.median(upper[:, 1:], axis=0))
    return {
        "eyes_dark": round(float(np.median(_pixels(light, EYES))) / max(cheeks, 1.0), 3),
        "eyes_flat": round(float(_pixels(edges, EYES).mean()) / max(float(edges[NOSE_AND_CHEEKS].mean()), 1e-3), 3),
        "lower_colour": round(float(colour), 1),
        "lower_light": round(abs(float(np.median(lower[:, 0])) - upper_light) / max(upper_light, 20.0), 3),
        "lower_spread": round(float(lower[:, 0].std()) / max(float(upper[:, 0].std()), 1.0), 3),
    }


def covered(m: dict[str, float]) -> dict[str, bool]:
    """Sunglasses and a mask, from ``covering``'s numbers (a mask is not judged behind sunglasses: the skin
    under the eyes it is compared with is hidden)."""
    sunglasses = m["eyes_dark"] < SUNGLASSES_DARK_BELOW and m["eyes_flat"] < SUNGLASSES_FLAT_BELOW
    mask = not sunglasses and m["lower_spread"] < MASK_FLAT_BELOW and (
        m["lower_colour"] > MASK_COLOUR_ABOVE or m["lower_light"] > MASK_LIGHT_ABOVE)
    return {"mask": mask, "sunglasses": sunglasses}


def worth_trying(report: QualityReport, cfg: QualityConfig) -> bool:
    """Is a walk-up face the gate refused still matched (the walk-up's 1:N search and the card holder's 1:1
    check alike)? Only when every reason it was refused for is one the recogniser may see past: a mask or
    sunglasses with ``covered_faces = advise``, or one of ``walkup_try_reasons`` (blurred, turned, a low
    detector score). Refusing those cost right answers and saved no wrong one (`kiosk bench robustness`)."""
    tried = set(cfg.walkup_try_reasons) | (set(COVERED) if cfg.covered_faces == "advise" else set())
    return not report.ok and set(report.reasons) <= tried


def measure(frame: np.ndarray, face: Face, aligned: np.ndarray, cfg: QualityConfig | None = None) -> dict[str, float]:
    """Every number the gate looks at. Sharpness is the Laplacian variance of the face as the recogniser
    sees it (``lit``: a dark face brightened first), brightness the mean grey level as the camera gave it."""
    cfg = cfg or QualityConfig()
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    inner = gray[INNER]
    brightened = lit(aligned, cfg)
    seen = cv2.cvtColor(brightened, cv2.COLOR_BGR2GRAY)[INNER]
    yaw, pitch = estimate_pose(face.kps)
    worn = covering(brightened) if cfg.covered_faces != "off" else {}
    return {**worn,
        "eye_distance_px": round(face.eye_distance, 1),
        "sharpness": round(float(cv2.Laplacian(seen, cv2.CV_64F).var()), 1),
        "yaw_deg": round(yaw, 1),
        "pitch_deg": round(pitch, 1),
        "brightness": round(float(inner.mean()), 1),
        "face_score": round(float(face.det_score), 3),
        "outside_ratio": round(outside_ratio(face, frame.shape), 3),
    }


def assess(frame: np.ndarray, face: Face, aligned: np.ndarray, cfg: QualityConfig,
           walkup: bool = False) -> QualityReport:
    """Apply the [quality] thresholds; ``reasons`` lists every check that failed, in a fixed order.
    ``walkup``: a frame of a walk-up, judged with the walkup_ size, sharpness and pose limits (refused only
    where the recogniser fails anyway); otherwise a would-be template (enrolment: the strict limits)."""
    m = measure(frame, face, aligned, cfg)
    if walkup:
        small, sharp = cfg.walkup_min_eye_distance_px, cfg.walkup_min_sharpness
        yaw, pitch = cfg.walkup_max_yaw_deg, cfg.walkup_max_pitch_deg
    else:
        small, sharp, yaw, pitch = cfg.min_eye_distance_px, cfg.min_sharpness, cfg.max_yaw_deg, cfg.max_pitch_deg
    failed = {
        "too_small": m["eye_distance_px"] < small,
        "blurry": m["sharpness"] < sharp,
        "pose": abs(m["yaw_deg"]) > yaw or abs(m["pitch_deg"]) > pitch,
        "too_dark": m["brightness"] < cfg.min_brightness,
        "too_bright": m["brightness"] > cfg.max_brightness,
        "occluded": m["face_score"] < cfg.min_face_score,
        "cut_off": m["outside_ratio"] > cfg.max_outside_ratio or not _landmarks_inside(face, frame.shape),
        **(covered(m) if cfg.covered_faces != "off" else {}),
    }
    reasons = tuple(name for name, bad in failed.items() if bad)
    return QualityReport(not reasons, reasons, m)


REASON_TEXT = {
    "too_small": "the face is too small: come closer or use a larger photo",
    "blurry": "the face is blurred (not just dark): hold still, clean the lens, or use a sharper photo",
    "pose": "the head is turned or tilted: look straight at the camera",
    "too_dark": "the face is too dark even brightened: add light in front of the face",
    "too_bright": "the face is over-exposed: avoid direct light or glare",
    "occluded": "part of the face is hidden or unclear (hand, mask, hair, sunglasses, shadow)",
    "cut_off": "the face is cut off by the edge of the picture",
    "mask": "a mask covers the nose and mouth: lower it for a moment",
    "sunglasses": "sunglasses hide the eyes: take them off for a moment",
}
"""English sentences for each reason (the UI may translate by reason name)."""
