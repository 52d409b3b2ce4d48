"""The Camera device: frames from any source, stall detection, reopen with backoff, end of source."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from hardware.camera_backends import (
    Backend,
    DriverMissing,
    FakeCameraControl,
    SourceEnded,
    SourceUnavailable,
    make_backend,
)
from hardware.config import CameraConfig
from hardware.device import Device, DeviceState, DeviceStatus, DropOldestQueue
from hardware.reasons import Reason, seconds
from hardware.sources import SourceSpec, parse_source

log = logging.getLogger(__name__)

READ_SLICE_S = 0.25       # longest a read may block before the loop checks stop and stall
IDLE_WAIT_S = 0.01        # pause after an empty read so a dead source does not spin the CPU
IMAGES_DEFAULT_FPS = 10.0
FILE_FALLBACK_FPS = 25.0
STUCK_GRACE_S = 1.0       # extra slack before `status` reports a read that never returned
ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class Frame:
    """One camera frame: BGR uint8 image (H x W x 3), monotonic capture time, sequence number.

    ``origin`` names where it came from when that is meaningful (the file name for an images:
    source), so scenario tests can tie a result to an input.
    """

    image: np.ndarray
    mono_ns: int
    seq: int
    origin: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any 8-bit gray/BGR/BGRA array as contiguous 3-channel BGR uint8."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def transform(image: np.ndarray, config: CameraConfig) -> np.ndarray:
    """Apply the configured size (before rotation), rotation, then mirroring."""
    image = to_bgr(image)
    if config.width_px and config.height_px and image.shape[:2] != (config.height_px, config.width_px):
        image = cv2.resize(image, (config.width_px, config.height_px), interpolation=cv2.INTER_AREA)
    if config.rotation_deg:
        image = cv2.rotate(image, ROTATIONS[config.rotation_deg])
    if config.mirror:
        image = cv2.flip(image, 1)
    return image


class Camera(Device):
    """Frames from one source into a bounded queue that drops the OLDEST frame when full.

    Read them with ``read(timeout_s)``. States: RUNNING while frames flow; STALLED after
    ``stall_timeout_s`` without one (the source is reopened with backoff); DISCONNECTED while it
    cannot be opened; ENDED when a file/images source without loop is done (``ended`` is set,
    ``finished`` becomes true once the queue is drained); FAILED when a driver is missing.

    A file/images source with ``fps=0`` is lossless: every frame is delivered, the camera waits
    for the consumer instead of dropping (for `kiosk run --exit-when-camera-ends` and tests).
    """

    kind = "camera"

    def __init__(self, config: CameraConfig, name: str = "camera") -> None:
        spec = parse_source(config.source)
        super().__init__(name, off_reason="no_camera" if spec.is_none else None)
        self.config = config
        self.spec: SourceSpec = spec
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(config.queue_frames)
        self.ended = threading.Event()
        self.fake = FakeCameraControl() if self.spec.kind == "fake" else None
        self.delivered = 0
        self._seq = 0
        self._last_frame_ns = 0
        self._lossless = self.spec.kind in ("file", "images") and self.spec.option("fps") == 0

    def describe(self) -> str:
        return self.spec.text or "(none)"

    @property
    def dropped(self) -> int:
        """Frames dropped because the consumer was slower than the camera."""
        return self.frames.dropped

    @property
    def finished(self) -> bool:
        """True once the source ended and every frame it produced has been read."""
        return self.ended.is_set() and len(self.frames) == 0

    @property
    def status(self) -> DeviceStatus:
        """The last state set by the thread; a read blocked past the stall timeout shows as STALLED."""
        status = super().status
        if status.state == DeviceState.RUNNING and not self._lossless and self._last_frame_ns:
            silent_s = (time.monotonic_ns() - self._last_frame_ns) / 1e9
            if silent_s > self.config.stall_timeout_s + STUCK_GRACE_S:
                return DeviceStatus(self.name, DeviceState.STALLED,
                                    Reason("camera_blocked", {"seconds": f"{silent_s:.0f}"}), status.since_ns)
        return status

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The oldest buffered frame, waiting up to ``timeout_s``; None if none came."""
        return self.frames.get(timeout_s)

    # -- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        backoff = self.config.reopen_backoff_s
        while not self._stop.is_set():
            backend = make_backend(self.spec, self.config, self.fake)
            try:
                backend.open()
            except DriverMissing as exc:
                self._set_state(DeviceState.FAILED, "camera_failed", detail=str(exc))
                return
            except SourceUnavailable as exc:
                self._set_state(DeviceState.DISCONNECTED, "camera_unavailable", detail=str(exc))
            else:
                outcome, flowed = self._pump_and_close(backend)
                if outcome in ("ended", "stopped"):
                    return
                if flowed:
                    backoff = self.config.reopen_backoff_s
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.config.reopen_backoff_max_s)

    def _pump_and_close(self, backend: Backend) -> tuple[str, bool]:
        try:
            outcome, flowed, detail = self._pump(backend)
        finally:
            backend.close()
        if outcome == "ended":
            self._set_state(DeviceState.ENDED, "camera_ended", source=self.spec.text, frames=self.delivered)
            self.ended.set()
        elif outcome == "stalled":
            self._set_state(DeviceState.STALLED, "camera_stalled", seconds=seconds(self.config.stall_timeout_s))
        elif outcome == "lost":
            self._set_state(DeviceState.DISCONNECTED, "camera_lost", detail=detail)
        return outcome, flowed

    def _pump(self, backend: Backend) -> tuple[str, bool, str]:
        stall_ns = int(self.config.stall_timeout_s * 1e9)
        last_ns, flowed = time.monotonic_ns(), False
        pace_s = self._pace_s(backend)
        next_due = time.monotonic()
        while not self._stop.is_set():
            try:
                image = backend.read(min(READ_SLICE_S, self.config.stall_timeout_s))
            except SourceEnded:
                return "ended", flowed, ""
            except SourceUnavailable as exc:
                return "lost", flowed, str(exc)
            now_ns = time.monotonic_ns()
            if image is None:
                if now_ns - last_ns >= stall_ns:
                    return "stalled", flowed, ""
                self._stop.wait(IDLE_WAIT_S)
                continue
            frame = Frame(transform(image, self.config), now_ns, self._seq, backend.last_origin)
            self._seq += 1
            if not flowed:
                flowed = True
                width, height = frame.size
                self._set_state(DeviceState.RUNNING, "camera_frames", width=width, height=height,
                                source=self.spec.text)
            if not self._deliver(frame):
                return "stopped", flowed, ""
            last_ns = self._last_frame_ns = time.monotonic_ns()
            if pace_s:
                next_due = max(next_due + pace_s, time.monotonic() - pace_s)
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        return "stopped", flowed, ""

    def _pace_s(self, backend: Backend) -> float | None:
        """Seconds between frames for file/images sources (None: live or lossless)."""
        if self.spec.kind not in ("file", "images") or self._lossless:
            return None
        default = IMAGES_DEFAULT_FPS if self.spec.kind == "images" else (backend.native_fps or FILE_FALLBACK_FPS)
        return 1.0 / float(self.spec.option("fps", default))

    def _deliver(self, frame: Frame) -> bool:
        if self._lossless:
            if not self.frames.put_wait(frame, self._stop):
                return False
        else:
            self.frames.put(frame)
        self.delivered += 1
        return True


def open_camera(config: CameraConfig, name: str = "camera") -> Camera:
    """The camera for a [camera] section, not started. With no source it stays OFF and reads nothing."""
    return Camera(config, name)
