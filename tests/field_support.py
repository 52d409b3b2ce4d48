"""Field punches in tests: real face videos (../shared/videos) as a phone's clip frames (JPEG, as the page films
them); the camera files for Chromium and the enrolment photos come from kiosk/tools/fakecamera.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.tools.fakecamera import enrolment_photos, jpeg_b64, still_y4m, video_images, video_y4m
from sync.hub.field.liveness import FILM_FPS, FRAME_PX

__all__ = ["clip_frames", "enrolment_photos", "fit", "jpeg_b64", "still_y4m", "video_images", "video_y4m"]


def fit(image: np.ndarray, px: int = FRAME_PX) -> np.ndarray:
    """The frame scaled so its longer side is ``px`` (as the page's canvas does)."""
    scale = px / max(image.shape[:2])
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def clip_frames(clip: Path, start_s: float, seconds: float) -> list[dict]:
    """The frames a phone sends for this cut of a video: ms since filming started, JPEG at the page's size."""
    return [{"t_ms": t_ms, "jpeg_b64": jpeg_b64(fit(image))}
            for t_ms, image in video_images(clip, start_s, seconds, FILM_FPS)]
