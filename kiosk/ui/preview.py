"""The live preview: the newest camera frame as a small JPEG with the detected face box drawn in,
encoded once per frame however many pages watch it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

PREVIEW_MAX_WIDTH_PX = 640
PREVIEW_JPEG_QUALITY = 70
BOX_THICKNESS_PX = 3
# BGR colours of the face box: recognised/usable, adjust (quality gate), unknown.
TONES = {"ok": (80, 200, 60), "adjust": (0, 170, 255), "unknown": (60, 60, 230), "neutral": (235, 235, 235)}


@dataclass(frozen=True)
class PreviewFrame:
    """One frame to show: its image, sequence number, and the face box with its tone (or none)."""

    image: np.ndarray
    seq: int
    bbox: np.ndarray | None = None
    tone: str = "neutral"


def render(frame: PreviewFrame) -> bytes:
    """The JPEG of a preview frame, scaled down to PREVIEW_MAX_WIDTH_PX."""
    image = frame.image
    scale = min(1.0, PREVIEW_MAX_WIDTH_PX / image.shape[1])
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    else:
        image = image.copy()
    if frame.bbox is not None:
        x1, y1, x2, y2 = (int(round(v * scale)) for v in frame.bbox[:4])
        cv2.rectangle(image, (x1, y1), (x2, y2), TONES.get(frame.tone, TONES["neutral"]), BOX_THICKNESS_PX)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
    return data.tobytes() if ok else b""


class PreviewCache:
    """Encodes the frame ``source()`` returns, once per new frame (thread-safe)."""

    def __init__(self, source: Callable[[], PreviewFrame | None]) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._jpeg: bytes | None = None

    def jpeg(self) -> tuple[tuple | None, bytes | None]:
        """(key, JPEG) of the newest frame; the key changes when the picture does."""
        frame = self.source()
        if frame is None:
            return None, None
        key = (frame.seq, frame.tone, None if frame.bbox is None else tuple(int(v) for v in frame.bbox[:4]))
        with self._lock:
            if key != self._key:
                self._jpeg, self._key = render(frame), key
            return self._key, self._jpeg
