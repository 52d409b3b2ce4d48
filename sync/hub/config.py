"""The hub's configuration file (hub.toml): server, database, faces, logging, outbound delivery."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kiosk.base.config import ConfigPath, StrictModel, load_model_file, validate_model
from kiosk.base.errors import ConfigError, KioskError
from kiosk.base.text import BRANCH
from kiosk.base.timeutil import LOCAL_TIME
from sync.hub.field.config import FieldConfig
from sync.hub.outbound.config import ConnectorsConfig, OutboundConfig

DEFAULT_HUB_CONFIG = Path("/etc/kiosk/hub.toml")
HUB_CONFIG_ENV = "KIOSK_HUB_CONFIG"
HUB_EXAMPLE = "config/hub.example.toml"
DB_PASSWORD_CREDENTIAL = "kiosk-hub-db-password"


class ServerConfig(StrictModel):
    """The HTTP server."""

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on (0.0.0.0 for all).")
    port: int = Field(8750, ge=0, le=65535, description="TCP port (0 picks a free one).")
    workers: int = Field(1, ge=1, le=64, description="Worker processes (PostgreSQL only; SQLite uses one).")
    tls_cert_file: ConfigPath | None = Field(None, description="PEM certificate chain for HTTPS; omit when a "
                                             "reverse proxy terminates TLS.")
    tls_key_file: ConfigPath | None = Field(None, description="PEM private key for HTTPS (or the systemd "
                                            "credential kiosk-hub-tls-key).")
    max_body_bytes: int = Field(4 * 2**20, ge=1024, le=2**30,
                                description="Largest request body a device may send, bytes.")
    max_hr_body_bytes: int = Field(32 * 2**20, ge=1024, le=2**31,
                                   description="Largest HR request body (photos are large), bytes.")
    max_batch: int = Field(1000, ge=1, le=10000, description="Most punches accepted in one upload.")
    punch_max_ahead_s: float = Field(300, ge=1, le=30 * 86400, description="A punch dated more than this many "
                                     "seconds after the hub receives it is stored flagged clock_ahead (export "
                                     "column hub_flags) and raised as a device issue: the kiosk's clock is ahead.")
    roster_page_size: int = Field(200, ge=1, le=5000, description="Employees per roster page.")
    export_page_size: int = Field(5000, ge=1, le=100000, description="Most punches per HR export request.")
    registration_code_ttl_h: float = Field(168, ge=0.01, le=8760,
                                           description="Hours a one-time registration code stays valid.")

    @model_validator(mode="after")
    def verify_tls_pair(self) -> ServerConfig:
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file needs tls_cert_file")
        return self


class DatabaseConfig(StrictModel):
    """Where the hub keeps its data."""

    backend: Literal["sqlite", "postgres"] = Field("sqlite", description="sqlite (embedded file) or postgres.")
    sqlite_path: ConfigPath = Field(Path("hub.db"), validate_default=True,
                                    description="SQLite database file (backend = sqlite).")
    postgres_dsn: str = Field("", description="libpq connection string without the password, e.g. "
                              "'host=db.internal dbname=kiosk_hub user=kiosk_hub'. The password comes from "
                              "the systemd credential kiosk-hub-db-password, $PGPASSWORD or ~/.pgpass.")
    postgres_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                 description="PostgreSQL schema holding the hub's tables.")
    secrets_key_file: ConfigPath = Field(Path("hub.key"), validate_default=True,
                                         description="0600 file with the hub key that seals webhook secrets in "
                                         "the database (made on first use; the systemd credential "
                                         "kiosk-hub-secrets-key wins). Every worker needs the same key: back it up.")
    pool_size: int = Field(8, ge=1, le=200, description="Most PostgreSQL connections per worker process.")
    busy_timeout_s: float = Field(10.0, ge=0.1, le=300, description="Seconds to wait for a database lock.")

    @model_validator(mode="after")
    def verify_postgres_has_dsn(self) -> DatabaseConfig:
        if self.backend == "postgres" and not self.postgres_dsn.strip():
            raise ValueError("backend = 'postgres' needs postgres_dsn")
        if "password=" in self.postgres_dsn.replace(" ", "").lower():
            raise ValueError("postgres_dsn must not hold the password; use the systemd credential "
                             f"{DB_PASSWORD_CREDENTIAL}, $PGPASSWORD or ~/.pgpass")
        return self

    def password(self) -> str | None:
        """The database password from the systemd credential, if one was passed."""
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            path = Path(cred_dir) / DB_PASSWORD_CREDENTIAL
            if path.exists():
                return path.read_text(encoding="utf-8").strip()
        return None


class FacesConfig(StrictModel):
    """Turning HR's photos into templates."""

    model_packs: list[ConfigPath] = Field(default_factory=list, description="Model pack folders the hub "
                                          "can make templates with; empty means the built-in default pack.")
    enabled: bool = Field(True, description="Make templates from photos (off: HR must send templates).")
    max_photo_bytes: int = Field(8 * 2**20, ge=1024, le=2**28, description="Largest single photo, bytes.")


class ConsoleConfig(StrictModel):
    """HR's console in the browser (served at /) and the accounts that sign in to it."""

    timezone: str = Field("UTC", description="IANA time zone of branches that have none of their own "
                          "(`kiosk hub branch set`), e.g. Asia/Shanghai.")
    session_idle_min: float = Field(30, ge=1, le=24 * 60, description="Minutes without a request after which a "
                                    "console session ends.")
    max_failures: int = Field(5, ge=1, le=100, description="Wrong passwords in a row before an account is locked.")
    lockout_s: float = Field(300, ge=1, le=86400, description="Seconds an account stays locked.")
    offline_after_s: float = Field(300, ge=10, le=86400, description="Seconds without a heartbeat after which a "
                                   "kiosk is shown offline.")
    manual_confirm_window_s: float = Field(600, ge=0, le=86400, description="A second manual punch or correction "
                                           "for one person within this many seconds of another needs confirming.")
    live_poll_s: float = Field(1.0, ge=0.1, le=60, description="How often the live punch feed looks for new "
                               "punches, seconds.")
    export_max_rows: int = Field(500_000, ge=1, le=10_000_000, description="Most punches in one CSV/XLSX export.")
    day_starts_at: str = Field("04:00", pattern=LOCAL_TIME, description="Local time (HH:MM) a work day starts on "
                               "the day sheet and Today, as the kiosks' punch.day_starts_at: with 04:00 a punch at "
                               "02:00 belongs to the day before (night shifts: e.g. 14:00).")
    branch_day_starts_at: dict[str, str] = Field(
        default_factory=dict, description="Branches whose work day starts at another time than day_starts_at, "
        "e.g. { B017 = \"14:00\" } for a branch with a night shift (set it as that branch's kiosks' "
        "punch.day_starts_at).")

    def day_starts_at_of(self, branch: str) -> str:
        """When ``branch``'s work day starts (HH:MM, local)."""
        return self.branch_day_starts_at.get(branch, self.day_starts_at)

    @field_validator("branch_day_starts_at")
    @classmethod
    def verify_branch_day_starts(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for code, start in value.items():
            if not re.match(BRANCH, code):
                raise ValueError(f"{code!r} is not a branch code (1-32 letters, digits, _ . -)")
            if not isinstance(start, str) or not re.match(LOCAL_TIME, start):
                raise ValueError(f"{code} = {start!r}: give the local time a work day starts as HH:MM, e.g. \"04:00\"")
        return value

    @field_validator("timezone")
    @classmethod
    def verify_timezone_exists(cls, value: str) -> str:
        from sync.hub.branches import TZ_PROBLEM, zone
        try:
            zone(value)
        except KioskError:
            raise ValueError(TZ_PROBLEM) from None
        return value


class HubLogConfig(StrictModel):
    """Logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Least severe level logged.")
    access_log: bool = Field(False, description="Log every HTTP request (noisy at thousands of punches/s).")


class HubConfig(StrictModel):
    """The whole hub configuration file."""

    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    # Built from {} with validation, so the default relative sqlite_path is resolved against the file.
    database: DatabaseConfig = Field(default_factory=dict, validate_default=True, description="Database.")
    faces: FacesConfig = Field(default_factory=FacesConfig, description="Photos to templates.")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="HR's console in the browser.")
    log: HubLogConfig = Field(default_factory=HubLogConfig, description="Logging.")
    outbound: OutboundConfig = Field(default_factory=OutboundConfig, description="Delivery to HR systems.")
    connectors: ConnectorsConfig = Field(default_factory=ConnectorsConfig, description="HR system connectors.")
    field: FieldConfig = Field(default_factory=FieldConfig, description="Field staff punching from paired phones.")

    _source: Path | None = None


def default_hub_config_path() -> Path:
    """$KIOSK_HUB_CONFIG or /etc/kiosk/hub.toml."""
    env = os.environ.get(HUB_CONFIG_ENV)
    return Path(env) if env else DEFAULT_HUB_CONFIG


def validate_hub_config(data: dict[str, Any], source: str, base_dir: Path | None) -> HubConfig:
    return validate_model(HubConfig, data, source, base_dir, HUB_EXAMPLE)


def load_hub_config(path: Path | None = None, overrides: list[str] | None = None) -> HubConfig:
    """Load and validate a hub.toml; relative paths are relative to its folder."""
    path = Path(path) if path else default_hub_config_path()
    if not path.exists():
        raise ConfigError(f"hub config file {path} does not exist",
                          fix="Create one with `kiosk hub init DIR`, or pass --config FILE.")
    return load_model_file(HubConfig, path, overrides, HUB_EXAMPLE)
