"""Config sections of the outbound side: the delivery worker ([outbound]) and connectors ([connectors.*])."""

from __future__ import annotations

import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from kiosk.base.config import ConfigPath, StrictModel
from kiosk.base.errors import ConfigError
from kiosk.base.text import BRANCH

FRAPPE_CREDENTIAL = "kiosk-hub-frappe-token"
FRAPPE_TOKEN_ENV = "KIOSK_HUB_FRAPPE_TOKEN"


class OutboundConfig(StrictModel):
    """The delivery worker that runs inside every `kiosk hub serve` worker process."""

    enabled: bool = Field(True, description="Run the delivery worker (webhooks, connectors, device offline "
                          "checks) inside the hub's worker processes.")
    poll_interval_s: float = Field(0.5, ge=0.01, le=60, description="Seconds between looks at the queue "
                                   "when it is idle (a new punch wakes the worker at once).")
    batch_size: int = Field(100, ge=1, le=5000, description="Most employees (queues) claimed per round.")
    per_key_batch: int = Field(50, ge=1, le=1000, description="Most events of one employee delivered per round, "
                               "in order.")
    concurrency: int = Field(4, ge=1, le=64, description="Deliveries in flight at once per worker process "
                             "(never two of the same employee).")
    timeout_s: float = Field(10.0, ge=0.1, le=300, description="Seconds one delivery may take before it "
                             "counts as failed.")
    lease_s: float = Field(60.0, ge=1, le=3600, description="Seconds a claimed delivery stays reserved for its "
                           "worker; a worker killed mid-delivery frees it after this.")
    max_attempts: int = Field(15, ge=1, le=1000, description="Failed attempts after which a delivery is "
                              "parked (dead letter) with its last error.")
    backoff_initial_s: float = Field(5.0, ge=0.01, le=3600, description="Seconds before the first retry; "
                                     "doubled after each failure, with jitter.")
    backoff_max_s: float = Field(900.0, ge=0.01, le=86400, description="Longest wait between two retries, s.")
    device_offline_after_s: float = Field(900.0, ge=10, le=30 * 86400, description="Seconds without a "
                                          "heartbeat after which a device counts as offline.")
    keep_delivered_days: float = Field(7.0, ge=0, le=3650, description="Days delivered and skipped records "
                                       "are kept (for `kiosk hub outbox list`); parked ones stay until handled.")

    @model_validator(mode="after")
    def verify_lease_outlasts_a_delivery(self) -> OutboundConfig:
        if self.lease_s < self.timeout_s + 1:
            raise ValueError("lease_s must be at least timeout_s + 1 s, or a slow delivery could be sent twice")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must not be below backoff_initial_s")
        return self


class FrappeConfig(StrictModel):
    """Two-way Frappe HRMS / ERPNext connector: punches -> Employee Checkin, Employees -> hub."""

    enabled: bool = Field(False, description="Turn the connector on.")
    url: str = Field("", description="Base URL of the Frappe site, e.g. https://hr.example.bank.")
    token_file: ConfigPath | None = Field(None, description="0600 file holding 'API_KEY:API_SECRET'. Unset: the "
                                          f"systemd credential {FRAPPE_CREDENTIAL}, else ${FRAPPE_TOKEN_ENV}.")
    method_prefix: str = Field("hrms", pattern=r"^(hrms|erpnext)$", description="'hrms' (HRMS app, v14+) or "
                               "'erpnext' (v13 and older) for the checkin method's module path.")
    employee_field: str = Field("attendance_device_id", pattern=r"^[a-z_][a-z0-9_]{0,63}$",
                                description="Employee field holding the hub's employee id ('name' for the "
                                "Employee's own id).")
    consent_field: str = Field("face_consent_date", pattern=r"^[a-z_][a-z0-9_]{0,63}$",
                               description="Employee field (a custom Date field) holding when the person gave "
                               "separate consent to face recognition (PIPL). Without it the Employee is hired "
                               "card-only and the photo is used once the field is set.")
    time_zone: str = Field("UTC", description="The HRMS's system time zone (IANA): checkin times are sent as "
                           "naive local times in it.")
    shift_types: list[str] = Field(default_factory=list, description="Shift Types whose 'Last Sync of Checkin' "
                                   "the hub advances, so auto-attendance runs.")
    branch_map: dict[str, str] = Field(default_factory=dict, description="HRMS Branch -> hub branch code; "
                                       "employees of unmapped branches are left alone.")
    push_punches: bool = Field(True, description="Send every punch as an Employee Checkin.")
    skip_auto_attendance_for_corrections: bool = Field(False, description="Send HR's corrections (made at the "
                                                       "hub) with skip_auto_attendance = 1.")
    pull_employees: bool = Field(True, description="Poll Employees: new hires with a photo, leavers.")
    employee_poll_interval_s: float = Field(60.0, ge=1, le=86400, description="Seconds between Employee polls.")
    shift_sync_interval_s: float = Field(60.0, ge=1, le=86400, description="Seconds between Last Sync of "
                                         "Checkin updates.")
    page_size: int = Field(100, ge=1, le=1000, description="Employees per request when polling.")

    @field_validator("time_zone")
    @classmethod
    def verify_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone; use an IANA name such as Asia/Shanghai or UTC") from exc
        return value

    @field_validator("branch_map")
    @classmethod
    def verify_branch_codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [code for code in value.values() if not re.match(BRANCH, code)]
        if bad:
            raise ValueError(f"hub branch codes {bad} are not valid: use 1-32 letters, digits, _ . -")
        return value

    @model_validator(mode="after")
    def verify_enabled_has_url(self) -> FrappeConfig:
        if self.enabled and not re.match(r"^https?://[^\s/]+", self.url):
            raise ValueError("enabled = true needs url (http:// or https://)")
        if "@" in self.url.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("url must not hold credentials; use token_file or the credential "
                             f"{FRAPPE_CREDENTIAL}")
        return self

    def token(self) -> str:
        """'KEY:SECRET' from the credential, the token file or the environment."""
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        sources = [Path(cred_dir) / FRAPPE_CREDENTIAL] if cred_dir else []
        sources += [self.token_file] if self.token_file else []
        for path in sources:
            if path.exists():
                return _checked_token(path.read_text(encoding="utf-8").strip(), str(path))
        if os.environ.get(FRAPPE_TOKEN_ENV):
            return _checked_token(os.environ[FRAPPE_TOKEN_ENV].strip(), f"${FRAPPE_TOKEN_ENV}")
        raise ConfigError("the Frappe connector has no API key and secret",
                          fix=f"Write 'API_KEY:API_SECRET' to connectors.frappe.token_file (mode 0600), the "
                          f"systemd credential {FRAPPE_CREDENTIAL}, or ${FRAPPE_TOKEN_ENV}.")


def _checked_token(text: str, where: str) -> str:
    key, _, secret = text.partition(":")
    if not key or not secret or any(c.isspace() for c in text):
        raise ConfigError(f"{where} does not hold 'API_KEY:API_SECRET'",
                          fix="Generate keys on the Frappe user (API Access) and write them as KEY:SECRET.")
    return text


class ConnectorsConfig(StrictModel):
    """Connectors to HR systems."""

    frappe: FrappeConfig = Field(default_factory=FrappeConfig, description="Frappe HRMS / ERPNext.")
