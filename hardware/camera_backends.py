"""Camera backends: OpenCV (V4L2, GStreamer, RTSP, video files), image folders, picamera2, a fake."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from hardware.config import CameraConfig
from hardware.sources import BACKENDS, SourceSpec

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
FAKE_DEFAULT_SIZE_PX = (320, 240)
FAKE_DEFAULT_FPS = 15.0
PICAMERA2_DEFAULT_SIZE_PX = (1280, 720)
PICAMERA2_HELP = ("picamera2 is not importable. On Raspberry Pi OS: `sudo apt install python3-picamera2`, "
                  "then create the venv with `python3 -m venv --system-site-packages .venv` so it can see it")


class SourceUnavailable(Exception):
    """The source cannot be opened or read now (unplugged, missing file); try again later."""


class DriverMissing(Exception):
    """A library the source needs is missing; retrying will not help."""


class SourceEnded(Exception):
    """A file or image-folder source has delivered its last frame."""


class Backend:
    """One way of getting frames. ``read`` returns a BGR/gray array, or None if nothing came in time."""

    native_fps: float | None = None
    last_origin: str = ""

    @classmethod
    def create(cls, spec: SourceSpec, config: CameraConfig, fake: FakeCameraControl | None) -> Backend:
        """Build the backend for a parsed source (most need the spec and the [camera] section)."""
        return cls(spec, config)  # type: ignore[call-arg]

    def open(self) -> None:
        raise NotImplementedError

    def read(self, timeout_s: float) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device (must be safe to call twice)."""


def gstreamer_available() -> bool:
    """Whether this OpenCV build was compiled with GStreamer (pip wheels are not; JetPack's is)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


class OpenCvBackend(Backend):
    """cv2.VideoCapture for v4l2:, gst:, rtsp:// and file: sources."""

    def __init__(self, spec: SourceSpec, config: CameraConfig) -> None:
        self.spec = spec
        self.config = config
        self.loop = bool(spec.option("loop", 0))
        self._cap: cv2.VideoCapture | None = None

    def _capture(self) -> cv2.VideoCapture:
        spec, timeout_ms = self.spec, int(self.config.stall_timeout_s * 1000)
        if spec.kind == "v4l2":
            target = int(spec.target) if spec.target.isdigit() else spec.target
            return cv2.VideoCapture(target, cv2.CAP_V4L2)
        if spec.kind == "gst":
            if not gstreamer_available():
                raise DriverMissing("this OpenCV build has no GStreamer support (pip's opencv-python-headless "
                                    "has none); on a Jetson use the OpenCV that JetPack installs")
            return cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
        if spec.kind == "rtsp":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
        path = Path(spec.target)
        if not path.is_file():
            raise SourceUnavailable(f"video file {path} does not exist")
        return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)

    def open(self) -> None:
        cap = self._capture()
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(f"cannot open {self.spec.text}")
        if self.spec.kind in ("v4l2", "gst", "rtsp"):
            self._configure_live(cap)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.native_fps = fps if fps and 0 < fps < 1000 else None
        self._cap = cap

    def _configure_live(self, cap: cv2.VideoCapture) -> None:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we want the newest frame, not a backlog
        if self.config.width_px and self.config.height_px:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width_px)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height_px)
        cap.set(cv2.CAP_PROP_FPS, self.config.fps)

    def read(self, timeout_s: float) -> np.ndarray | None:
        if self._cap is None:
            raise SourceUnavailable(f"{self.spec.text} is closed")
        ok, image = self._cap.read()
        if ok:
            return image
        if self.spec.kind != "file":
            return None
        if not self.loop:
            raise SourceEnded(self.spec.text)
        self.close()  # reopening is more reliable than seeking across codecs
        self.open()
        ok, image = self._cap.read()
        if not ok:
            raise SourceUnavailable(f"{self.spec.target} has no readable frame")
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderBackend(Backend):
    """Images of a folder in name order (zero-pad numbers in names): the test and demo camera."""

    @classmethod
    def create(cls, spec: SourceSpec, config: CameraConfig, fake: FakeCameraControl | None) -> Backend:
        return cls(spec)

    def __init__(self, spec: SourceSpec) -> None:
        self.folder = Path(spec.target)
        self.loop = bool(spec.option("loop", 0))
        self._files: list[Path] = []
        self._index = 0

    def _list(self) -> list[Path]:
        if not self.folder.is_dir():
            raise SourceUnavailable(f"image folder {self.folder} does not exist")
        files = sorted((p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: p.name)
        if not files:
            raise SourceUnavailable(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.folder}")
        return files

    def open(self) -> None:
        self._files, self._index = self._list(), 0

    def read(self, timeout_s: float) -> np.ndarray | None:
        if self._index >= len(self._files):
            if not self.loop:
                raise SourceEnded(str(self.folder))
            self._files, self._index = self._list(), 0
        path = self._files[self._index]
        self._index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None and not path.exists():
            # The folder changed under us (files replaced or taken away): list it again, once, and go
            # on after the vanished file; an empty folder is the camera going dark (SourceUnavailable).
            log.debug("camera: %s vanished; listing %s again", path.name, self.folder)
            self._files = self._list()
            self._index = next((i for i, p in enumerate(self._files) if p.name > path.name), len(self._files))
            return None
        if image is None:
            log.warning("camera: skipping unreadable image %s", path)
            return None
        self.last_origin = path.name
        return image


class Picamera2Backend(Backend):
    """A Raspberry Pi CSI camera through picamera2 (imported here only: it exists only on a Pi)."""

    def __init__(self, spec: SourceSpec, config: CameraConfig) -> None:
        self.index = int(spec.target or 0)
        self.config = config
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise DriverMissing(f"{PICAMERA2_HELP} ({exc})") from None
        try:
            cam = Picamera2(self.index)
        except (IndexError, RuntimeError) as exc:
            raise SourceUnavailable(f"no Raspberry Pi camera {self.index}: {exc}") from None
        size = (self.config.width_px, self.config.height_px) if self.config.width_px else PICAMERA2_DEFAULT_SIZE_PX
        # "RGB888" in libcamera's naming is B,G,R byte order in memory: exactly OpenCV's BGR.
        video = cam.create_video_configuration(main={"size": size, "format": "RGB888"},
                                               controls={"FrameRate": self.config.fps})
        cam.configure(video)
        cam.start()
        self._cam = cam
        self.native_fps = self.config.fps

    def read(self, timeout_s: float) -> np.ndarray | None:
        if self._cam is None:
            raise SourceUnavailable("picamera2 is closed")
        try:
            return self._cam.capture_array("main")
        except RuntimeError as exc:
            raise SourceUnavailable(f"picamera2 capture failed: {exc}") from None

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


class FakeCameraControl:
    """Switches for the fake camera, kept across reopens so tests can make it misbehave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.silent = False
        self.unplugged = False
        self.opens = 0

    def go_silent(self) -> None:
        """Keep the device open but deliver nothing (a hung USB camera)."""
        self.silent = True

    def resume(self) -> None:
        self.silent = False

    def unplug(self) -> None:
        """Make reads and opens fail until replug()."""
        self.unplugged = True

    def replug(self) -> None:
        self.unplugged = False

    def count_open(self) -> None:
        with self._lock:
            self.opens += 1


class FakeBackend(Backend):
    """Synthetic frames (a colour ramp with the sequence number) at a steady rate."""

    @classmethod
    def create(cls, spec: SourceSpec, config: CameraConfig, fake: FakeCameraControl | None) -> Backend:
        return cls(spec, fake or FakeCameraControl())

    def __init__(self, spec: SourceSpec, control: FakeCameraControl) -> None:
        self.control = control
        self.native_fps = float(spec.option("fps", FAKE_DEFAULT_FPS)) or FAKE_DEFAULT_FPS
        self.size = (int(spec.option("width", FAKE_DEFAULT_SIZE_PX[0])),
                     int(spec.option("height", FAKE_DEFAULT_SIZE_PX[1])))
        self._count = 0
        self._next = 0.0

    def open(self) -> None:
        self.control.count_open()
        if self.control.unplugged:
            raise SourceUnavailable("fake camera is unplugged")
        self._next = time.monotonic()

    def read(self, timeout_s: float) -> np.ndarray | None:
        if self.control.unplugged:
            raise SourceUnavailable("fake camera was unplugged")
        if self.control.silent:
            time.sleep(timeout_s)
            return None
        delay = self._next - time.monotonic()
        if delay > timeout_s:
            time.sleep(timeout_s)
            return None
        time.sleep(max(0.0, delay))
        self._next = max(self._next + 1.0 / self.native_fps, time.monotonic() - 1.0)
        self._count += 1
        return self._draw(self._count)

    def _draw(self, number: int) -> np.ndarray:
        width, height = self.size
        image = np.zeros((height, width, 3), np.uint8)
        image[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        image[:, :, 1] = (number * 7) % 256
        cv2.putText(image, str(number), (8, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        self.last_origin = f"fake-{number}"
        return image


def make_backend(spec: SourceSpec, config: CameraConfig, fake: FakeCameraControl | None) -> Backend:
    """The backend registered for a parsed source's kind (hardware.sources.BACKENDS)."""
    backend: type[Backend] = globals()[BACKENDS[spec.kind]]
    return backend.create(spec, config, fake)
