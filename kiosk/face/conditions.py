"""Capture conditions made from a photo: the photo in a 640x480 camera frame, as the kiosk camera would
see the person, then changed as a walk-up can change it (a small face, blur, low light, JPEG, roll, a mask
over the lower face, sunglasses). ``kiosk bench robustness`` runs the daemon's frame path on each.

Every condition is ``make(image, face, index) -> frame``: ``face`` is the photo's face as the photo path
found it (``FaceEngine.photo_face``), whose landmarks set the face's size and say where a mask or
sunglasses go; ``index`` picks the colour of the mask or glasses from a fixed cycle, so the frames are
the same on every run and not all of one colour. Pure image code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from kiosk.face.evaluation import dimmed
from kiosk.face.types import Face

FRAME_W, FRAME_H = 640, 480
BACKGROUND = 96
# Where the midpoint of the eyes goes in a frame built for a set distance between the eyes.
EYES_AT = (FRAME_W / 2, FRAME_H * 0.45)
# A surgical-style mask, in units of the distance between the eyes: x along the eye line, y down from
# it (on the ArcFace template the nose tip is at y 0.57, the mouth corners at y 1.15 and x +-0.41,
# the chin about y 1.75): from the bridge of the nose to under the chin, cheek to cheek.
MASK_OUTLINE = ((-1.02, 0.42), (-0.5, 0.3), (0.0, 0.26), (0.5, 0.3), (1.02, 0.42), (0.98, 1.0),
                (0.62, 1.55), (0.0, 1.82), (-0.62, 1.55), (-0.98, 1.0))
MASK_PLEATS_Y = (0.7, 1.0, 1.3)
MASK_COLOURS = ((226, 201, 160), (236, 236, 232), (44, 44, 48))        # BGR: light blue, white, black
# Sunglasses: a dark lens over each eye (half axes in eye distances), a bridge and the start of each arm.
LENS_HALF_AXES = (0.43, 0.3)
LENS_COLOURS = ((22, 22, 22), (24, 34, 48), (52, 40, 34))            # BGR: black, brown, blue-grey
BLUR_SIGMAS_PX = (3.0, 6.0, 12.0)  # a little motion; much; so much the recogniser stops knowing faces
DIM_LIGHT = 0.3
JPEG_QUALITY = 20
ROLL_DEG = 30.0


def camera_frame(image: np.ndarray) -> np.ndarray:
    """The photo letterboxed into a 640x480 camera frame, as the kiosk camera would deliver."""
    return _letterbox(image)[0]


def _letterbox(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame, 2x3 matrix from photo to frame coordinates) of the letterboxed photo."""
    h, w = image.shape[:2]
    scale = min(FRAME_W / w, FRAME_H / h)
    resized = cv2.resize(image, (int(w * scale), int(h * scale)))
    frame = np.full((FRAME_H, FRAME_W, 3), BACKGROUND, np.uint8)
    y, x = (FRAME_H - resized.shape[0]) // 2, (FRAME_W - resized.shape[1]) // 2
    frame[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return frame, np.array([[resized.shape[1] / w, 0, x], [0, resized.shape[0] / h, y]])


def _moved(face: Face, matrix: np.ndarray) -> Face:
    """``face`` in the coordinates ``matrix`` (2x3 affine) maps to."""
    def apply(points: np.ndarray) -> np.ndarray:
        return (points.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)

    corners = apply(face.bbox.reshape(2, 2))
    return Face(np.concatenate([corners.min(0), corners.max(0)]), apply(face.kps), face.det_score)


def framed(image: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
    """The photo letterboxed into a camera frame, and its face in frame coordinates."""
    frame, matrix = _letterbox(image)
    return frame, _moved(face, matrix)


def at_eye_distance(image: np.ndarray, face: Face, eye_px: float) -> np.ndarray:
    """A camera frame in which the face's eyes are ``eye_px`` apart, near the middle (shrunk with area
    averaging, as a sensor would; the rest of the frame is plain grey)."""
    return placed(image, face, eye_px)[0]


def placed(image: np.ndarray, face: Face, eye_px: float) -> tuple[np.ndarray, Face]:
    """``at_eye_distance``'s frame, and the face in its coordinates (to roll it or mask it there too)."""
    scale = eye_px / max(face.eye_distance, 1e-6)
    resized = cv2.resize(image, None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mid = (face.kps[0] + face.kps[1]) / 2 * scale
    shift = np.array([[1.0, 0, EYES_AT[0] - mid[0]], [0, 1.0, EYES_AT[1] - mid[1]]])
    frame = cv2.warpAffine(resized, shift, (FRAME_W, FRAME_H), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(BACKGROUND,) * 3)
    return frame, _moved(face, np.array([[scale, 0, shift[0, 2]], [0, scale, shift[1, 2]]]))


def _face_axes(face: Face) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(midpoint of the eyes, unit vector along the eye line, unit vector down the face) times 1 eye distance."""
    left, right = face.kps[0].astype(np.float64), face.kps[1].astype(np.float64)
    along = right - left
    down = np.array([-along[1], along[0]])
    return (left + right) / 2, along, down


def _to_frame(face: Face, points: tuple[tuple[float, float], ...]) -> np.ndarray:
    origin, along, down = _face_axes(face)
    return np.array([origin + x * along + y * down for x, y in points], dtype=np.float64)


def with_mask(frame: np.ndarray, face: Face, index: int = 0) -> np.ndarray:
    """A plain mask drawn over the nose, mouth and chin (colour from MASK_COLOURS by ``index``), with pleats."""
    out = frame.copy()
    colour = MASK_COLOURS[index % len(MASK_COLOURS)]
    shift = 4  # sub-pixel precision for the anti-aliased polygon
    outline = np.round(_to_frame(face, MASK_OUTLINE) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(out, [outline], colour, cv2.LINE_AA, shift)
    pleat = tuple(int(c * 0.8) for c in colour)
    thickness = max(1, int(round(face.eye_distance * 0.03)))
    for y in MASK_PLEATS_Y:
        ends = np.round(_to_frame(face, ((-0.75, y), (0.75, y)))).astype(np.int32)
        cv2.line(out, tuple(int(v) for v in ends[0]), tuple(int(v) for v in ends[1]), pleat, thickness, cv2.LINE_AA)
    return out


def with_sunglasses(frame: np.ndarray, face: Face, index: int = 0) -> np.ndarray:
    """Dark lenses over both eyes (colour from LENS_COLOURS by ``index``), a bridge and the arms' start."""
    out = frame.copy()
    colour = LENS_COLOURS[index % len(LENS_COLOURS)]
    d = face.eye_distance
    angle = math.degrees(math.atan2(float(face.kps[1][1] - face.kps[0][1]), float(face.kps[1][0] - face.kps[0][0])))
    axes = (max(1, int(round(LENS_HALF_AXES[0] * d))), max(1, int(round(LENS_HALF_AXES[1] * d))))
    for eye in face.kps[:2]:
        cv2.ellipse(out, (int(round(eye[0])), int(round(eye[1]))), axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
    thickness = max(1, int(round(d * 0.06)))
    for a, b in (((-0.1, -0.08), (0.1, -0.08)), ((-0.92, -0.05), (-1.12, 0.0)), ((0.92, -0.05), (1.12, 0.0))):
        ends = np.round(_to_frame(face, (a, b))).astype(np.int32)
        cv2.line(out, tuple(int(v) for v in ends[0]), tuple(int(v) for v in ends[1]), colour, thickness, cv2.LINE_AA)
    return out


def rolled(frame: np.ndarray, face: Face, degrees: float) -> np.ndarray:
    """The frame turned by ``degrees`` (positive: anticlockwise on screen) about the midpoint of the eyes."""
    mid = (face.kps[0] + face.kps[1]) / 2
    matrix = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), degrees, 1.0)
    return cv2.warpAffine(frame, matrix, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(BACKGROUND,) * 3)


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """The frame after a round trip through JPEG at ``quality``."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else frame


Condition = Callable[[np.ndarray, Face, int], np.ndarray]


def _on_frame(change: Callable[[np.ndarray, Face, int], np.ndarray]) -> Condition:
    """A condition that changes the letterboxed frame (with the face's landmarks in frame coordinates)."""
    def make(image: np.ndarray, face: Face, index: int) -> np.ndarray:
        frame, moved = framed(image, face)
        return change(frame, moved, index)
    return make


CONDITIONS: dict[str, Condition] = {
    "clean": _on_frame(lambda frame, face, i: frame),
    "eyes_40px": lambda image, face, i: at_eye_distance(image, face, 40),
    "eyes_30px": lambda image, face, i: at_eye_distance(image, face, 30),
    "eyes_20px": lambda image, face, i: at_eye_distance(image, face, 20),
    **{f"blur_{sigma:g}": _on_frame(lambda frame, face, i, sigma=sigma: cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma))
       for sigma in BLUR_SIGMAS_PX},
    "dim_30": _on_frame(lambda frame, face, i: dimmed(frame, DIM_LIGHT)),
    "jpeg_20": _on_frame(lambda frame, face, i: jpeg(frame, JPEG_QUALITY)),
    "roll_+30": _on_frame(lambda frame, face, i: rolled(frame, face, ROLL_DEG)),
    "roll_-30": _on_frame(lambda frame, face, i: rolled(frame, face, -ROLL_DEG)),
    "mask": _on_frame(with_mask),
    "sunglasses": _on_frame(with_sunglasses),
}
"""Every generated condition by name, in the order the bench reports them."""

CONDITION_TEXT = {
    "clean": "the photo letterboxed into the 640x480 frame",
    "eyes_40px": "the face scaled to 40 px between the eyes",
    "eyes_30px": "30 px between the eyes",
    "eyes_20px": "20 px between the eyes",
    **{f"blur_{sigma:g}": f"Gaussian blur, sigma {sigma:g} px" for sigma in BLUR_SIGMAS_PX},
    "dim_30": f"{DIM_LIGHT:.0%} of the light",
    "jpeg_20": f"JPEG quality {JPEG_QUALITY}",
    "roll_+30": f"head rolled {ROLL_DEG:g} degrees anticlockwise",
    "roll_-30": f"head rolled {ROLL_DEG:g} degrees clockwise",
    "mask": "a plain mask over nose, mouth and chin (blue, white or black)",
    "sunglasses": "dark sunglasses",
}
