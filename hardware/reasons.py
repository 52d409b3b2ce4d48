"""Why a device is in its state, as a code and parameters: the one English wording of each code lives
here (log, `kiosk hw probe`); the kiosk screen translates the same codes from its catalogues."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REASONS: dict[str, str] = {
    "not_started": "not started",
    "stopped": "stopped",
    "opening": "opening {what}",
    "internal_error": "internal error: {error}",
    "no_camera": "no camera configured (camera.source is empty): card-only kiosk",
    "camera_failed": "{detail}",
    "camera_unavailable": "{detail}; retrying every few seconds",
    "camera_lost": "{detail}; reopening",
    "camera_stalled": "no frame for {seconds} s; reopening",
    "camera_blocked": "no frame for {seconds} s (capture blocked)",
    "camera_ended": "{source}: no more frames after {frames}",
    "camera_frames": "{width}x{height} frames from {source}",
    "no_reader": "no card reader configured (rfid.port is unset)",
    "reader_listening": "listening on {port} ({protocol}, {baud} baud)",
    "keyboard_listening": "listening on {port} (keyboard reader '{name}')",
    "evdev_missing": "evdev is not installed: `pip install evdev` (part of the pi/jetson extras) for 'hid' readers",
    "port_unavailable": "{detail}; retrying every {seconds} s",
    "port_lost": "{port} was lost ({error}); reopening",
    "no_gps": "no GPS configured (gps.port is unset)",
    "gps_waiting": "{port} open, waiting for NMEA sentences",
    "gps_garbage": "bytes but no valid NMEA sentence for {seconds} s (wrong baud rate?); reopening {port}",
    "gps_silent": "no data for {seconds} s; reopening {port}",
    "gps_fixes": "receiving fixes",
    "gps_fix_stale": "last fix older than {seconds} s (sentences arrive without a position)",
    "gps_no_sentence": "no sentence yet",
    "gps_no_fix": "no fix ({sats} satellites used)",
    "gps_not_measured": "quality {quality} is not a measured position ({sats} satellites used)",
    "gps_gsa_no_fix": "receiver reports no fix (GSA)",
    "gps_rmc_no_fix": "receiver reports no fix (RMC status V)",
    "no_feedback": "no feedback hardware (feedback.driver = \"none\"); signals are recorded",
    "gpio_pins": "{pins}",
    "gpiozero_missing": "gpiozero is not installed: install the pi extra (`pip install 'branch-kiosk[pi]'`)",
    "gpio_error": "cannot drive GPIO: {error}",
}


@dataclass(frozen=True)
class Reason:
    """A reason code (a key of REASONS) with its parameters (numbers, ports, sources: never sentences,
    except ``detail``/``error`` texts that come from the system or a driver as they are)."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in REASONS:
            raise KeyError(f"unknown device reason code {self.code!r}")

    @property
    def text(self) -> str:
        return REASONS[self.code].format(**self.params)


def seconds(value: float) -> str:
    """A duration parameter as the reasons print it (10, 2.5)."""
    return f"{value:g}"
