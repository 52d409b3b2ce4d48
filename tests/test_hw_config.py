"""Hardware config sections: no devices by default, cross-field rules, the example file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hardware.config import CameraConfig, FeedbackConfig, GeofenceConfig, GpsConfig, RfidConfig
from kiosk.config import load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "kiosk.example.toml"


def test_a_fresh_kiosk_home_has_no_devices(kiosk_home) -> None:
    config = load_config(kiosk_home)
    assert config.camera.source == "" and config.rfid.port is None and config.gps.port is None
    assert config.feedback.driver == "none" and config.geofence.policy == "off"


def test_example_file_documents_every_hardware_key() -> None:
    text = EXAMPLE.read_text()
    config = load_config(EXAMPLE)
    for section in ("camera", "rfid", "gps", "feedback", "geofence"):
        assert f"[{section}]" in text
        for key in type(getattr(config, section)).model_fields:
            assert f"{key} =" in text, f"{section}.{key} is not shown in {EXAMPLE.name}"


@pytest.mark.parametrize("model", [CameraConfig, RfidConfig, GpsConfig, FeedbackConfig, GeofenceConfig])
def test_every_field_is_described(model) -> None:
    for name, field in model.model_fields.items():
        assert field.description and len(field.description) > 10, f"{model.__name__}.{name}"


def test_verify_geofence_has_center() -> None:
    with pytest.raises(ValidationError, match="needs lat and lon"):
        GeofenceConfig(policy="refuse", lat=31.2)
    assert GeofenceConfig(policy="flag", lat=31.2, lon=121.5).radius_m == 200


def test_config_check_reports_hardware_problems(invoke, kiosk_home) -> None:
    result = invoke("config", "check", str(kiosk_home), "--set", "geofence.policy=flag",
                    "--set", "camera.source=webcam", "--set", "rfid.protocl=em4100")
    assert result.exit_code == 1
    assert "geofence" in result.output and "needs lat and lon" in result.output
    assert "camera.source = 'webcam'" in result.output and "v4l2:/dev/video0" in result.output
    assert "rfid.protocl" in result.output and "unknown key" in result.output


def test_unknown_source_options_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown option 'speed'"):
        CameraConfig(source="images:/srv/demo?speed=2")
    assert CameraConfig(source="images:/srv/demo?fps=0&loop=1").source == "images:/srv/demo?fps=0&loop=1"
