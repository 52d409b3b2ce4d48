"""Open every configured device at once, and say how each one is doing (for `kiosk hw probe`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hardware.camera import Camera, open_camera
from hardware.device import Device, DeviceState
from hardware.feedback import Feedback, open_feedback
from hardware.geofence import check_geofence
from hardware.gps import GpsReader, open_gps
from hardware.rfid import HidReader, RfidReader, open_rfid
from kiosk.config import KioskConfig

UNSETTLED = (DeviceState.STARTING, DeviceState.STOPPED)


@dataclass
class Devices:
    """The kiosk's devices, built from one config; unconfigured ones are OFF stand-ins."""

    camera: Camera
    rfid: RfidReader | HidReader
    gps: GpsReader
    feedback: Feedback

    def all(self) -> list[Device]:
        return [self.camera, self.rfid, self.gps, self.feedback]

    def start(self) -> None:
        for device in self.all():
            device.start()

    def stop(self) -> None:
        """Stop in reverse order of importance: feedback last so the door relay is released last."""
        for device in (self.camera, self.rfid, self.gps, self.feedback):
            device.stop()


def open_devices(config: KioskConfig) -> Devices:
    """Every device of a config, not started."""
    return Devices(open_camera(config.camera), open_rfid(config.rfid), open_gps(config.gps),
                   open_feedback(config.feedback))


def wait_settled(devices: list[Device], wait_s: float) -> None:
    """Poll until no device is still STARTING, or ``wait_s`` passes."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if all(d.state not in UNSETTLED or not d.configured for d in devices):
            return
        time.sleep(0.05)


def probe_rows(config: KioskConfig, devices: Devices) -> list[dict]:
    """One row per device (and the geofence when enabled): name, where, state, reason."""
    rows = [{"device": d.kind, "where": d.describe(), "state": d.state.value, "reason": d.reason,
             "ok": d.state.working or not d.configured} for d in devices.all()]
    if config.geofence.policy != "off":
        fence = config.geofence
        result = check_geofence(devices.gps.fix(), fence, config.gps.max_fix_age_s)
        detail = result.as_dict()
        reason = (f"{detail['distance_m']} m from the centre, accuracy +/- {detail['accuracy_m']} m"
                  if result.distance_m is not None else "no fresh GPS fix")
        rows.append({"device": "geofence", "where": f"{fence.lat},{fence.lon} r={fence.radius_m:g} m",
                     "state": result.verdict.value, "reason": reason, "ok": True})
    return rows
