"""Hub console test support: console accounts, signed-in API sessions, kiosks that post through the device API."""

from __future__ import annotations

import httpx
from sync_support import TEST_DIM, TEST_MODEL
from test_hub_api import register, upload
from test_sync_protocol import chain

from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub import accounts

PASSWORD = "correct horse battery"


def add_user(hub, username: str, role: str, branches: list[str] | None = None) -> str:  # noqa: ANN001
    accounts.add_user(hub.db, username, role, PASSWORD, branches or [], "tests")
    return username


def signed_in(hub, username: str, password: str = PASSWORD) -> httpx.Client:  # noqa: ANN001
    """An API client holding a console session (cookie) and sending its CSRF token on changes."""
    client = httpx.Client(base_url=hub.url, timeout=30)
    resp = client.post("/v1/hr/session", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    client.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
    return client


class FakeKiosk:
    """A registered kiosk speaking the device API: heartbeats and hash-chained punches."""

    def __init__(self, hub, branch: str = "B001", model_id: str = TEST_MODEL) -> None:  # noqa: ANN001
        self.client = register(hub, branch, model_id=model_id)
        self.model_id = model_id
        self.device_id = self.client.device_id
        self.seq, self.prev = 0, "0" * 64

    def heartbeat(self, backlog: int = 0, **extra) -> None:  # noqa: ANN003
        body = {"software_version": "0.9.1", "model_id": self.model_id, "template_dim": TEST_DIM,
                "backlog": backlog, "clock_state": "verified", "clock_offset_s": 0.2,
                "disk_free_bytes": 12 * 2**30, "temperature_c": 51.0, "last_punch_utc": iso_utc(utc_now()), **extra}
        resp = self.client.post("/v1/device/heartbeat", json=body)
        assert resp.status_code == 200, resp.text

    def punch(self, employee_id: str, ts_utc: str | None = None, **fields) -> dict:  # noqa: ANN003
        rec = chain(1, start_seq=self.seq + 1, prev=self.prev, employee_id=employee_id,
                    ts_utc=ts_utc or iso_utc(utc_now()), **fields)[0]
        result = upload(self.client, [rec])
        assert result["accepted"] == 1, result
        self.seq, self.prev = rec["seq"], rec["hash"]
        return rec

    def close(self) -> None:
        self.client.close()
