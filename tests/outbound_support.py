"""Outbound test support: a webhook receiver on 127.0.0.1 that verifies like a real one, a settable clock,
kiosk-like punch chains of several employees, and hubs whose own delivery worker is off (tests drive one)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from conftest import REPO
from kiosk.base.record import GENESIS_HASH, punch_hash
from kiosk.base.timeutil import iso_utc, utc_now, uuid7


def documented_verifier() -> Callable[..., None]:
    """``verify_webhook`` exactly as docs/integrations.md shows it: the receiver runs the documented snippet."""
    text = (REPO / "docs" / "integrations.md").read_text()
    code = re.search(r"<!-- verifier:begin -->\s*```python\n(.*?)```\s*<!-- verifier:end -->", text, re.S).group(1)
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/integrations.md", "exec"), scope)  # noqa: S102 - our own documentation
    return scope["verify_webhook"]


class FakeClock:
    """The delivery engine's clock: starts now, moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def catch_up(self) -> None:
        """At least a second past the real time: what the hub just queued (at real time) is due."""
        self.now = max(self.now, utc_now() + timedelta(seconds=1))


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: verifies signatures (replay window included), de-duplicates by
    webhook-id, records the order events arrived in. ``answer(event)`` may return (status, delay_s)."""

    secrets: list[str]
    tolerance_s: int = 300
    answer: Callable[[dict[str, Any]], tuple[int, float]] | None = None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        self.verify = documented_verifier()
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.attempts += 1
        for secret in self.secrets:
            try:
                self.verify(secret, headers, body, self.tolerance_s)
                break
            except (ValueError, KeyError) as exc:
                reason = str(exc)
        else:
            with self.lock:
                self.refused.append(reason)
            return 401
        event = json.loads(body)
        status, delay = self.answer(event) if self.answer else (200, 0.0)
        if delay:
            self.release.wait(delay)
        if status >= 300:
            return status
        with self.lock:
            if headers["webhook-id"] in self.seen:
                self.duplicates.append(headers["webhook-id"])
            else:
                self.seen.add(headers["webhook-id"])
                self.accepted.append(event)
        return 204

    def start(self, port: int = 0) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.handle({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until start(port) again."""
        if self.server is not None:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            self.release.clear()

    def subjects_in_order(self) -> dict[str, list[str]]:
        """Per subject, the event ids in the order they were accepted."""
        order: dict[str, list[str]] = {}
        for event in self.accepted:
            order.setdefault(event["subject"], []).append(event["id"])
        return order


def punches(employees: list[str], start_seq: int = 1, prev: str = GENESIS_HASH) -> list[dict]:
    """One device's chain: one punch per entry of ``employees``, seconds apart."""
    records, base = [], utc_now()
    for offset, employee in enumerate(employees):
        rec = {"id": str(uuid7()), "seq": start_seq + offset, "employee_id": employee, "method": "face",
               "ts_utc": iso_utc(base + timedelta(seconds=offset)), "mono_ns": 1000 + offset, "boot_id": "boot-1",
               "clock_state": "verified", "score": 0.61, "lat": None, "lon": None, "accuracy_m": None, "flags": "",
               "note": "", "prev_hash": prev}
        rec["hash"] = punch_hash(rec)
        prev = rec["hash"]
        records.append(rec)
    return records


def register(url: str, code: str, name: str = "kiosk") -> httpx.Client:
    resp = httpx.post(f"{url}/v1/device/register", json={"code": code, "device_name": name,
                                                          "software_version": "0.1.0", "model_id": "ab" * 32,
                                                          "template_dim": 512}, timeout=30)
    assert resp.status_code == 201, resp.text
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {resp.json()['token']}"}, timeout=30)
    client.device_id = resp.json()["device_id"]
    return client


def upload(device: httpx.Client, records: list[dict]) -> dict:
    resp = device.post("/v1/device/punches", json={"punches": records})
    assert resp.status_code == 200, resp.text
    return resp.json()


def statuses(db: Any) -> dict[str, int]:
    with db.transaction(write=False) as tx:
        return {r["status"]: int(r["n"]) for r in tx.rows(
            "SELECT status, count(*) AS n FROM outbound_deliveries GROUP BY status")}


