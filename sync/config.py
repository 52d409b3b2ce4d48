"""The kiosk's [sync] config section: where the hub is, timeouts, batching, intervals, retention."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from kiosk.base.config import ConfigPath, StrictModel

INSECURE_HTTP_FIX = ("use https:// (sync.ca_bundle names a private CA), or set sync.allow_insecure_http = true "
                     "only on a network you trust")


def sends_token_in_clear(url: str) -> bool:
    """True for an http:// URL to a host other than this machine: the device token would cross the network
    in clear text. The one rule for the config check, `kiosk sync register` and every sync request."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


class SyncConfig(StrictModel):
    """The sync agent on this kiosk (`kiosk sync run`)."""

    allow_insecure_http: bool = Field(
        False, description="Allow an http:// hub URL that is not on this machine (127.0.0.1, localhost). "
        "The device token and every punch then cross the network unencrypted: only for a trusted test network.")
    hub_url: str | None = Field(
        None, description="Base URL of the hub, e.g. https://hub.example.bank:8750. Default for "
        "`kiosk sync register --hub`; when set it also overrides the URL recorded at registration.")
    ca_bundle: ConfigPath | None = Field(
        None, description="PEM file of CA certificates that sign the hub's TLS certificate; "
        "omit to use the system's trusted CAs.")
    connect_timeout_s: float = Field(5.0, ge=0.1, le=120, description="Seconds to wait for a TCP+TLS connection.")
    read_timeout_s: float = Field(30.0, ge=0.5, le=600,
                                  description="Seconds to wait for the hub's answer to one request.")
    batch_size: int = Field(500, ge=1, le=5000,
                            description="Punches per upload request (the hub may ask for fewer).")
    push_interval_s: float = Field(30.0, ge=1, le=3600,
                                   description="Seconds between periodic uploads (new punches are also "
                                   "pushed within about a second of being stored).")
    watch_interval_ms: int = Field(250, ge=50, le=5000,
                                   description="Milliseconds between checks of the store for a newly "
                                   "stored punch (PRAGMA data_version).")
    roster_interval_s: float = Field(300.0, ge=5, le=86400,
                                     description="Seconds between roster downloads (new hires, leavers).")
    heartbeat_interval_s: float = Field(60.0, ge=5, le=86400,
                                        description="Seconds between heartbeats (health report to the hub).")
    backoff_initial_s: float = Field(1.0, ge=0.1, le=600,
                                     description="First wait after a failed request; doubles on each failure.")
    backoff_max_s: float = Field(300.0, ge=1, le=86400,
                                 description="Longest wait between retries while the hub is unreachable.")
    retention_days: int = Field(0, ge=0, le=36500,
                                description="Days after the hub acknowledged a punch before it may be purged "
                                "from this kiosk; 0 keeps every punch forever. Unsynced punches are never purged.")

    @field_validator("hub_url")
    @classmethod
    def verify_hub_url_is_http(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")) or len(value) < 10:
            raise ValueError("hub_url must start with https:// (or http:// on a private test network)")
        if sends_token_in_clear(value) and not info.data.get("allow_insecure_http"):
            raise ValueError("plain http:// to a hub on another machine sends the device token and punches "
                             f"in clear text; {INSECURE_HTTP_FIX}")
        return value

    @model_validator(mode="after")
    def verify_backoff_cap_above_start(self) -> SyncConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self
