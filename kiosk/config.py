"""The kiosk's configuration file: every layer's section composed into one strictly validated TOML file.

Each layer owns its section (hardware/config.py, kiosk/face/config.py, kiosk/punching/config.py, ...);
this module only puts them together, so it sits above all of them and below the CLI."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from hardware.config import CameraConfig, FeedbackConfig, GeofenceConfig, GpsConfig, RfidConfig
from kiosk.base.config import ConfigPath, StrictModel, apply_overrides, load_model_file, validate_model
from kiosk.face.config import FaceConfig, LivenessConfig, MatchConfig, QualityConfig
from kiosk.punching.config import PunchConfig
from kiosk.runtime.config import EventsConfig, PipelineConfig
from kiosk.time.config import ClockConfig
from kiosk.ui.config import UiConfig
from sync.config import SyncConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")
EXAMPLE = "config/kiosk.example.toml"
CONFIG_ENV = "KIOSK_CONFIG"


class DeviceConfig(StrictModel):
    """Who this kiosk is."""

    name: str = Field("kiosk", min_length=1, max_length=64,
                      description="Human-readable name of this kiosk, shown in health reports.")
    branch: str = Field("B001", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$",
                        description="Branch code this kiosk belongs to (letters, digits, _ . -).")
    timezone: str = Field("UTC", description="IANA time zone used to show local times, e.g. Asia/Shanghai.")

    @field_validator("timezone")
    @classmethod
    def verify_timezone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone; use an IANA name such as Asia/Shanghai or UTC") from exc
        return value


class StoreConfig(StrictModel):
    """The encrypted punch store."""

    path: ConfigPath = Field(Path("/var/lib/kiosk/kiosk.db"),
                             description="SQLCipher database file; relative paths are relative to this config file.")
    key_file: ConfigPath | None = Field(
        None, description="File holding the 256-bit database key as 64 hex digits, mode 0600. "
        "Used when no systemd credential 'kiosk-db-key' is present.")
    busy_timeout_s: float = Field(5.0, ge=0.1, le=120,
                                  description="Seconds a writer waits for another writer before giving up.")
    evidence_thumbnails: bool = Field(False, description="Keep a small encrypted face thumbnail with each face punch.")
    evidence_retention_days: int = Field(30, ge=1, le=3650,
                                         description="Days after which evidence thumbnails are erased.")


class LogConfig(StrictModel):
    """Logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log level written to the journal/stderr.")


def section(description: str) -> Any:  # noqa: ANN401 - a pydantic FieldInfo, typed as the section it fills
    """A section of the file, its defaults when absent: validated from ``{}`` inside KioskConfig's own validator,
    not by the section's class, which would first build a validator of its own for each absent section (15 more
    validators: a fifth of the CPU a load takes)."""
    return Field(default_factory=dict, validate_default=True, description=description)


class KioskConfig(StrictModel):
    """The whole kiosk configuration file."""

    device: DeviceConfig = section("Identity of this kiosk.")
    store: StoreConfig = section("The encrypted store.")
    log: LogConfig = section("Logging.")
    camera: CameraConfig = section("The camera (none by default).")
    rfid: RfidConfig = section("The card reader (none by default).")
    gps: GpsConfig = section("The GPS receiver (off by default).")
    feedback: FeedbackConfig = section("Buzzer, LEDs, door relay.")
    geofence: GeofenceConfig = section("Allowed punch area.")
    punch: PunchConfig = section("Punch policy.")
    liveness: LivenessConfig = section("Liveness checks.")
    clock: ClockConfig = section("Trusted time.")
    pipeline: PipelineConfig = section("Frame pipeline pacing.")
    events: EventsConfig = section("Event output.")
    face: FaceConfig = section("Face models, detector and tracking.")
    quality: QualityConfig = section("Face quality gate.")
    match: MatchConfig = section("1:N matching and the frame vote.")
    sync: SyncConfig = section("The sync agent: hub, batching, retention.")
    ui: UiConfig = section("The kiosk screen (local web UI) and admin mode.")

    # Path of the file this was loaded from (not a TOML key).
    _source: Path | None = None

    @model_validator(mode="after")
    def verify_buttons_have_a_screen(self) -> KioskConfig:
        """direction = buttons asks on the screen: without one nobody could ever choose."""
        if self.punch.direction == "buttons" and not self.ui.enabled:
            message = ("'buttons' shows 上班 / 下班 on the kiosk screen, but the screen is off (ui.enabled = "
                       "false): set ui.enabled = true, or use direction = 'auto' (the same choice, no buttons)")
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("value_error", message), loc=("punch", "direction"), input="buttons")])
        return self


def default_config_path() -> Path:
    """The config file used when --config is not given: $KIOSK_CONFIG or /etc/kiosk/kiosk.toml."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def validate_config(data: dict[str, Any], source: str, base_dir: Path | None) -> KioskConfig:
    """Validate raw data into a KioskConfig or raise ConfigError listing every problem."""
    return validate_model(KioskConfig, data, source, base_dir, EXAMPLE)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> KioskConfig:
    """Load, override and validate the config file; relative paths are relative to its folder."""
    return load_model_file(KioskConfig, Path(path) if path else default_config_path(), overrides, EXAMPLE)


def config_from_defaults(base_dir: Path, overrides: list[str] | None = None) -> KioskConfig:
    """A config with every default, paths relative to ``base_dir`` (used by init and the demo)."""
    return validate_config(apply_overrides({}, overrides or []), "(defaults)", base_dir)
