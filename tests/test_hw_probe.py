"""`kiosk hw probe`: every configured device opened and reported, on real homes and fakes."""

from __future__ import annotations

import json

from waiting import wait_state

from hardware.device import DeviceState
from kiosk.cli.probe import open_devices
from kiosk.config import load_config


def test_probe_on_a_home_without_hardware(invoke, kiosk_home) -> None:
    result = invoke("hw", "probe", "--config", str(kiosk_home), "--wait", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["DEVICE", "WHERE", "STATE", "REASON"]
    states = {line.split()[0]: line.split()[2] for line in lines[1:]}
    assert states == {"camera": "off", "rfid": "off", "gps": "off", "feedback": "running"}


def test_probe_with_fake_devices_and_a_geofence(invoke, kiosk_home, tmp_path) -> None:
    # --wait is an upper bound: the probe prints as soon as every device has settled.
    result = invoke("hw", "probe", "--config", str(kiosk_home), "--wait", "60", "--json",
                    "--set", "camera.source=fake:?fps=20", "--set", "rfid.port=fake:",
                    "--set", "gps.port=fake:?lat=31.2400&lon=121.4900&interval_s=0.1",
                    "--set", "geofence.policy=refuse", "--set", "geofence.lat=31.2401",
                    "--set", "geofence.lon=121.4900")
    assert result.exit_code == 0, result.output
    rows = {row["device"]: row for row in json.loads(result.output)}
    assert rows["camera"]["state"] == "running" and "320x240" in rows["camera"]["reason"]
    assert rows["rfid"]["state"] == "running" and rows["gps"]["state"] == "running"
    assert rows["geofence"]["state"] == "inside" and "11.1 m from the centre" in rows["geofence"]["reason"]


def test_probe_names_what_is_broken(invoke, kiosk_home, tmp_path) -> None:
    result = invoke("hw", "probe", "--config", str(kiosk_home), "--wait", "60",
                    "--set", f"rfid.port={tmp_path / 'ttyUSB7'}", "--set", f"camera.source=file:{tmp_path / 'x.mp4'}")
    assert result.exit_code == 1
    assert "disconnected" in result.output and "ttyUSB7 is not there" in result.output
    assert "x.mp4 does not exist" in result.output


def test_open_devices_start_and_stop_cleanly(kiosk_home) -> None:
    devices = open_devices(load_config(kiosk_home, ["rfid.port=fake:", "gps.port=fake:"]))
    devices.start()
    wait_state(devices.rfid, DeviceState.RUNNING)
    devices.stop()
    assert [d.state for d in devices.all()] == [DeviceState.OFF, DeviceState.STOPPED, DeviceState.STOPPED,
                                                DeviceState.STOPPED]
    assert not devices.rfid.alive and not devices.gps.alive
