"""Device drivers behind small interfaces, with misbehaving fakes: camera, RFID, GPS, feedback."""

from __future__ import annotations

import importlib
from typing import Any

# Factories are resolved lazily so that `import hardware.config` (done by every `kiosk` command)
# does not pull in OpenCV, pyserial or pynmea2.
_EXPORTS = {
    "open_camera": "hardware.camera",
    "open_rfid": "hardware.rfid",
    "open_gps": "hardware.gps",
    "open_feedback": "hardware.feedback",
    "DeviceState": "hardware.device",
    "DeviceStatus": "hardware.device",
    "Frame": "hardware.camera",
    "CardRead": "hardware.rfid_protocols",
    "Fix": "hardware.nmea",
    "GpsTime": "hardware.nmea",
    "Signal": "hardware.feedback",
    "check_geofence": "hardware.geofence",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hardware' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
