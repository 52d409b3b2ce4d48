"""A phone's front camera for headless Chromium (--use-file-for-fake-video-capture): real face videos (or one
still frame) written as YUV4MPEG2 files with OpenCV, no ffmpeg needed. Used by `kiosk bench field` and the
field punch tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


def video_images(clip: Path, start_s: float, seconds: float, fps: float) -> Iterator[tuple[int, np.ndarray]]:
    """(ms from ``start_s``, BGR image) of a video at ``fps`` (its nearest frames), for ``seconds``."""
    cap = cv2.VideoCapture(str(clip))
    native = cap.get(cv2.CAP_PROP_FPS) or 30.0
    index, next_t = 0, start_s
    try:
        while True:
            ok, image = cap.read()
            t_s = index / native
            index += 1
            if not ok or t_s > start_s + seconds:
                return
            if t_s + 1e-6 >= next_t:
                next_t += 1 / fps
                yield round((t_s - start_s) * 1000), image
    finally:
        cap.release()


def _y4m_frame(image: np.ndarray, width: int, height: int) -> bytes:
    """The image letterboxed into width x height, as one I420 frame."""
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (int(image.shape[1] * scale) // 2 * 2, int(image.shape[0] * scale) // 2 * 2),
                         interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 90, np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    frame[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()


def write_y4m(frames: list[np.ndarray], out: Path, fps: int, width: int = 640, height: int = 480) -> Path:
    """YUV4MPEG2 4:2:0 at ``fps``, each frame letterboxed into width x height; Chromium plays it in a loop."""
    with out.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in frames:
            fh.write(_y4m_frame(image, width, height))
    return out


def video_y4m(clip: Path, out: Path, start_s: float, seconds: float, fps: int = 15) -> Path:
    """A cut of a real video as the camera."""
    return write_y4m([image for _, image in video_images(clip, start_s, seconds, fps)], out, fps)


def still_y4m(image: np.ndarray, out: Path, frames: int = 10, fps: int = 10) -> Path:
    """A still picture held in front of the camera: one frame, repeated."""
    return write_y4m([image] * frames, out, fps)


def jpeg_b64(image: np.ndarray, quality: int = 80) -> str:
    """An image as base64 JPEG (what the phone's page and HR's employee API send)."""
    import base64
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the image cannot be encoded as JPEG")
    return base64.b64encode(data.tobytes()).decode()


def enrolment_photos(clip: Path, at_s: list[float]) -> list[str]:
    """Full-size frames of a video at the given times, as base64 JPEG for HR's employee API."""
    return [jpeg_b64(next(video_images(clip, at, 1.0, 1.0))[1], 95) for at in at_s]
