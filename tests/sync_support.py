"""Sync/hub test support: real hubs (SQLite and PostgreSQL) on 127.0.0.1, registered kiosk homes, HR clients.

PostgreSQL: one fresh, randomly named database per test run (dropped at the end) on the server
at $KIOSK_TEST_PG_DSN or 127.0.0.1:5432, and a fresh schema per test inside it. When the server
is unreachable the PostgreSQL variants are skipped with the reason (under CI they fail).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from conftest import skip_or_fail
from kiosk.commands import cli
from kiosk.config import KioskConfig, load_config
from kiosk.store import Store, open_store
from kiosk.store.punches import PunchDraft
from kiosk.tools.localhub import postgres_unavailable, temporary_database
from sync.agent import Agent
from sync.hub import devices
from sync.hub.config import HubConfig, validate_hub_config
from sync.hub.faces import NoTemplateMaker, TemplateMaker
from sync.hub.server import HubThread

TEST_MODEL = "ab" * 32  # a model id for kiosks in tests that do not run the face engine
TEST_DIM = 512
CONSENT = {"given_utc": "2026-01-05T08:00:00.000Z", "text_version": "face-2026-01", "language": "zh"}
"""The person's consent to face recognition, as HR sends it with photos or templates."""
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test run; skips (and says why) when none is reachable,
    fails under CI."""
    reason = postgres_unavailable()
    if reason:
        skip_or_fail(f"PostgreSQL hub tests: {reason}")
    with temporary_database() as dsn:
        yield dsn


def hub_config_data(backend: str, tmp_path: Path, request: pytest.FixtureRequest, **server: Any) -> dict:
    data: dict[str, Any] = {"database": {"backend": backend}, "server": {"port": 0, **server},
                            "faces": {"enabled": True}}
    if backend == "postgres":
        data["database"].update(postgres_dsn=request.getfixturevalue("pg_database"),
                                postgres_schema=f"t_{secrets.token_hex(5)}", pool_size=4)
    else:
        data["database"]["sqlite_path"] = str(tmp_path / "hub.db")
    return data


def restart_port() -> int:
    """A free port below the kernel's ephemeral range, for a hub that is killed and started again on the
    same address: a port-0 server or an outgoing connection elsewhere on a shared machine can take a
    port from that range in between (then the restart cannot bind, or the kiosk talks to another hub)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # Drawn at random, so two such tests running at once (other checkouts) are unlikely to meet.
    for port in secrets.SystemRandom().sample(range(10_000, low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in 200 tries between 10000 and {low}")


@pytest.fixture(params=BACKENDS)
def hub_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def hub_config(hub_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> HubConfig:
    return validate_hub_config(hub_config_data(hub_backend, tmp_path, request), "test", tmp_path)


@dataclass
class HubFixture:
    """A running hub, its database, and an HR client with a valid token."""

    server: HubThread
    hr: httpx.Client
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self) -> Any:
        return self.server.db

    def code(self, branch: str = "B001") -> str:
        return devices.create_code(self.db, branch, 1.0)["code"]

    def hire(self, employee_id: str = "E1", branch: str = "B001") -> None:
        """HR puts a card-only person on a branch's roster (so punches for them carry no roster flag)."""
        resp = self.hr.post("/v1/hr/employees", json={"employee_id": employee_id, "name": f"Person {employee_id}",
                                                      "branches": [branch]})
        assert resp.status_code == 201, resp.text

    def export(self, since: int = 0) -> list[dict]:
        """Every punch HR can read, following the cursor through all pages."""
        import json
        rows: list[dict] = []
        while True:
            resp = self.hr.get("/v1/hr/punches", params={"since": since, "limit": 1000})
            assert resp.status_code == 200, resp.text
            page = [json.loads(line) for line in resp.text.splitlines() if line]
            rows += page
            since = int(resp.headers["X-Next-Cursor"])
            if resp.headers["X-More"] != "true":
                return rows


def start_hub(config: HubConfig, maker: TemplateMaker | None = None) -> HubFixture:
    server = HubThread(config, maker=maker or NoTemplateMaker()).start()
    token = devices.create_api_token(server.db, "hr", "tests")["token"]
    hr = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return HubFixture(server, hr)


@pytest.fixture
def hub(hub_config: HubConfig) -> Iterator[HubFixture]:
    """A real hub (uvicorn on 127.0.0.1, free port) over a fresh SQLite file or PostgreSQL schema."""
    fixture = start_hub(hub_config)
    yield fixture
    fixture.hr.close()
    fixture.server.stop()


@dataclass
class Kiosk:
    """A kiosk home made by `kiosk init`, its open store and a sync agent."""

    path: Path
    config: KioskConfig
    store: Store
    agent: Agent

    def punch(self, employee_id: str = "E1", count: int = 1) -> None:
        if self.store.roster.get(employee_id) is None:
            self.store.roster.add(employee_id, f"Person {employee_id}")
        with self.store.atomic():
            for _ in range(count):
                self.store.punches.append(PunchDraft(employee_id, "card", "verified", score=0.5))

    def close(self) -> None:
        self.agent.close()
        self.store.close()


@pytest.fixture
def make_kiosk(tmp_path: Path) -> Iterator[Callable[..., Kiosk]]:
    """Factory: a fresh kiosk home (real `kiosk init`), optionally registered with a hub."""
    made: list[Kiosk] = []

    def _make(branch: str = "B001", hub: HubFixture | None = None, transport: Any = None,
              model: tuple[str | None, int | None] = (TEST_MODEL, TEST_DIM), sync: dict | None = None) -> Kiosk:
        home = tmp_path / f"kiosk-{len(made)}-{branch}"
        result = CliRunner().invoke(cli, ["init", str(home), "--branch", branch], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        overrides = [f"sync.{k}={v}" for k, v in {"backoff_initial_s": 0.1, "backoff_max_s": 1,
                                                    **(sync or {})}.items()]
        config = load_config(home / "kiosk.toml", overrides)
        store = open_store(config)
        kiosk = Kiosk(home / "kiosk.toml", config, store, Agent(config, store, transport=transport, model=model))
        made.append(kiosk)
        if hub is not None:
            kiosk.agent.register(hub.url, hub.code(branch))
        return kiosk

    yield _make
    for kiosk in made:
        kiosk.close()


