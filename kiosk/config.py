"""The kiosk's configuration: one TOML file, validated strictly, with --set overrides."""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator

from hardware.config import CameraConfig, FeedbackConfig, GeofenceConfig, GpsConfig, RfidConfig
from kiosk.configbase import ConfigPath, StrictModel
from kiosk.daemon_config import ClockConfig, EventsConfig, LivenessConfig, PipelineConfig, PunchConfig
from kiosk.errors import ConfigError
from kiosk.face.config import FaceConfig, MatchConfig, QualityConfig
from kiosk.ui.config import UiConfig
from sync.config import SyncConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")
EXAMPLE = "config/kiosk.example.toml"
M = TypeVar("M", bound=BaseModel)
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


class KioskConfig(StrictModel):
    """The whole kiosk configuration file."""

    device: DeviceConfig = Field(default_factory=DeviceConfig, description="Identity of this kiosk.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="The encrypted store.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="The camera (none by default).")
    rfid: RfidConfig = Field(default_factory=RfidConfig, description="The card reader (none by default).")
    gps: GpsConfig = Field(default_factory=GpsConfig, description="The GPS receiver (off by default).")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig, description="Buzzer, LEDs, door relay.")
    geofence: GeofenceConfig = Field(default_factory=GeofenceConfig, description="Allowed punch area.")
    punch: PunchConfig = Field(default_factory=PunchConfig, description="Punch policy.")
    liveness: LivenessConfig = Field(default_factory=LivenessConfig, description="Liveness checks.")
    clock: ClockConfig = Field(default_factory=ClockConfig, description="Trusted time.")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="Frame pipeline pacing.")
    events: EventsConfig = Field(default_factory=EventsConfig, description="Event output.")
    face: FaceConfig = Field(default_factory=FaceConfig, description="Face models, detector and tracking.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Face quality gate.")
    match: MatchConfig = Field(default_factory=MatchConfig, description="1:N matching and the frame vote.")
    sync: SyncConfig = Field(default_factory=SyncConfig, description="The sync agent: hub, batching, retention.")
    ui: UiConfig = Field(default_factory=UiConfig, description="The kiosk screen (local web UI) and admin mode.")

    # Path of the file this was loaded from (not a TOML key).
    _source: Path | None = None


def default_config_path() -> Path:
    """The config file used when --config is not given: $KIOSK_CONFIG or /etc/kiosk/kiosk.toml."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=VALUE`` into a key path and a value (TOML syntax, else a plain string)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r} is not KEY=VALUE",
                          fix="Write it as a dotted key path and a value, e.g. --set punch.debounce_s=60.")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply --set overrides to raw config data (validation happens afterwards, with the rest)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(path[:-1])} is a value, not a section",
                                  fix="Check the key path against config/kiosk.example.toml.")
            node = child
        node[path[-1]] = value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can fail into a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          fix="Create one with `kiosk init DIR`, or pass --config FILE.") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory", fix="Pass the TOML file itself.") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable by this user",
                          fix="Run as the kiosk user or fix the file's permissions.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text", fix="Save it as UTF-8 TOML.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML", problems=[f"{path}: {exc}"],
                          fix="Fix the syntax at the line shown.") from None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The valid key names of the section at ``loc`` (for 'unknown key' messages)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return sorted(model.model_fields)


def describe_errors(model: type[BaseModel], exc: ValidationError, source: str) -> list[str]:
    """One line per problem: file, key path, offending value, what is expected."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1]) or []
            expected = "unknown key; valid keys here: " + ", ".join(valid)
        elif err["type"] == "missing":
            lines.append(f"{source}: {key}: missing; this key is required")
            continue
        else:
            expected = err["msg"].removeprefix("Value error, ")
        shown = value if not isinstance(value, dict) else "{...}"
        lines.append(f"{source}: {key} = {shown!r}: {expected}")
    return lines


def validate_model(model: type[M], data: dict[str, Any], source: str, base_dir: Path | None, example: str) -> M:
    """Validate raw data into ``model`` or raise ConfigError listing every problem."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = describe_errors(model, exc, source)
        raise ConfigError(f"{source} has {len(problems)} problem(s)", problems=problems,
                          fix=f"Fix each key shown (see {example}).") from None


def load_model_file(model: type[M], path: Path, overrides: list[str] | None, example: str) -> M:
    """Read, override and validate a TOML file; relative paths are relative to its folder."""
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate_model(model, data, str(path), path.resolve().parent, example)
    config._source = path
    return config


def validate_config(data: dict[str, Any], source: str, base_dir: Path | None) -> KioskConfig:
    """Validate raw data into a KioskConfig or raise ConfigError listing every problem."""
    return validate_model(KioskConfig, data, source, base_dir, EXAMPLE)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> KioskConfig:
    """Load, override and validate the config file; relative paths are relative to its folder."""
    return load_model_file(KioskConfig, Path(path) if path else default_config_path(), overrides, EXAMPLE)


def config_from_defaults(base_dir: Path, overrides: list[str] | None = None) -> KioskConfig:
    """A config with every default, paths relative to ``base_dir`` (used by init and the demo)."""
    return validate_config(apply_overrides({}, overrides or []), "(defaults)", base_dir)
