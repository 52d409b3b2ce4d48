"""The kiosk's HTTP client for the hub: explicit timeouts, TLS with a CA bundle, typed failures.

It takes an httpx transport, so tests inject faults (500s, timeouts, cut connections) with
``httpx.MockTransport`` and run the same calls against a real hub.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from kiosk import __version__
from kiosk.time.hubclock import HubClock, measure
from sync.errors import DeviceNotAuthorized, HubRefused, HubUnreachable
from sync.protocol import (
    API_PREFIX,
    DeviceEnrolmentBatch,
    DeviceEnrolmentResponse,
    Heartbeat,
    HeartbeatResponse,
    PunchBatchResponse,
    RegisterRequest,
    RegisterResponse,
    RosterPage,
)

log = logging.getLogger(__name__)

Model = TypeVar("Model", bound=BaseModel)
RETRYABLE_STATUS = {408, 425, 429}


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """Verify the hub's certificate against ``ca_bundle`` (or the system CAs)."""
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise HubRefused(f"cannot read the CA bundle {ca_bundle}: {exc}",
                         fix="Point sync.ca_bundle at a readable PEM file of CA certificates.") from None


def _error_text(resp: httpx.Response) -> tuple[str, str, str]:
    """(code, message, fix) from the hub's error body, or the status line."""
    try:
        err = resp.json()["error"]
        return str(err.get("code", "")), str(err.get("message", "")), str(err.get("fix", ""))
    except (ValueError, KeyError, TypeError):
        return "", f"HTTP {resp.status_code} {resp.reason_phrase}", ""


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HubClient:
    """One hub, one device token; every failure is HubUnreachable (retry) or HubRefused (don't)."""

    def __init__(self, base_url: str, token: str | None = None, *, ca_bundle: Path | None = None,
                 connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=tls_context(ca_bundle),
                                 transport=transport, headers={"User-Agent": f"branch-kiosk/{__version__}"})
        self.last_clock: HubClock | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        sent_wall, sent_mono = time.time(), time.monotonic_ns()
        try:
            resp = self.http.request(method, API_PREFIX + path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise HubUnreachable(f"the hub at {self.base_url} did not answer in time ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc):
                raise HubUnreachable(f"the hub's TLS certificate is not trusted ({exc})",
                                     fix="Set sync.ca_bundle to the CA that signed the hub's certificate.") from None
            raise HubUnreachable(f"cannot connect to the hub at {self.base_url} ({exc})") from None
        except httpx.TransportError as exc:
            raise HubUnreachable(f"the connection to the hub was cut ({type(exc).__name__}: {exc})") from None
        clock = measure(resp.headers, sent_wall, time.time(), sent_mono, time.monotonic_ns())
        self.last_clock = clock or self.last_clock
        self._raise_for_status(resp)
        return resp

    def _raise_for_status(self, resp: httpx.Response) -> None:
        status = resp.status_code
        if status < 400:
            return
        code, message, fix = _error_text(resp)
        if status >= 500 or status in RETRYABLE_STATUS:
            raise HubUnreachable(f"the hub failed: {message or status}", retry_after_s=_retry_after(resp))
        if status in (401, 403):
            raise DeviceNotAuthorized(f"the hub refused this kiosk's credentials: {message}",
                                      fix=fix or "Register again: `kiosk sync register --hub URL --code CODE`.",
                                      status=status, code=code)
        raise HubRefused(f"the hub refused the request ({status}): {message}", fix=fix, status=status, code=code)

    def _parse(self, resp: httpx.Response, model: type[Model]) -> Model:
        try:
            return model.model_validate_json(resp.content)
        except ValidationError:
            # A proxy or captive portal answering 200 with something else: try again later.
            raise HubUnreachable(f"the hub's answer to {resp.request.url.path} is not a protocol v1 "
                                 f"{model.__name__}") from None

    def register(self, req: RegisterRequest) -> RegisterResponse:
        return self._parse(self._send("POST", "/device/register", json=req.model_dump()), RegisterResponse)

    def upload(self, punches: list[dict[str, Any]]) -> PunchBatchResponse:
        return self._parse(self._send("POST", "/device/punches", json={"punches": punches}), PunchBatchResponse)

    def roster(self, cursor: int) -> RosterPage:
        return self._parse(self._send("GET", "/device/roster", params={"cursor": cursor}), RosterPage)

    def enrolments(self, batch: DeviceEnrolmentBatch) -> DeviceEnrolmentResponse:
        return self._parse(self._send("POST", "/device/enrolments", json=batch.model_dump()), DeviceEnrolmentResponse)

    def heartbeat(self, beat: Heartbeat) -> HeartbeatResponse:
        return self._parse(self._send("POST", "/device/heartbeat", json=beat.model_dump()), HeartbeatResponse)
