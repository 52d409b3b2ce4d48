"""`kiosk bench deliveries`: webhook deliveries/s to a local receiver and punch -> Employee Checkin latency.

Everything real and local: the hub is a `kiosk hub serve` child process (its own delivery worker),
the receiver verifies every signature, the HRMS is the Frappe stand-in, and the latency punches are
appended to a SQLCipher kiosk store watched by a `kiosk sync run` child process, as on a kiosk.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

from kiosk.cli.util import echo_json
from kiosk.tools.bench_hub import _fill_store, _ingest, _kiosk_home, _open, _register, _synthetic_batches
from kiosk.tools.frappe_standin import FrappeSite, FrappeStandIn
from sync.hub.outbound.webhooks import signature

WAIT_LIMIT_S = 600.0
PUNCH_GAP_S = 1.5  # walk-ups seconds apart; the agent wakes its push job at most once a second (WAKE_RETRY_S)
PUNCH_LIMIT_S = 60.0  # a punch not at the HRMS by then is counted as missed, as `kiosk bench hub` does


class CountingReceiver:
    """A keep-alive webhook receiver that checks each signature and counts distinct webhook-ids."""

    def __init__(self) -> None:
        self.secret = ""
        self.ids: set[str] = set()
        self.bad = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, name="bench-receiver", daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                msg_id, stamp = self.headers["webhook-id"], int(self.headers["webhook-timestamp"])
                good = signature(receiver.secret, msg_id, stamp, body) in self.headers["webhook-signature"].split()
                with receiver.lock:
                    if good:
                        receiver.ids.add(msg_id)
                    else:
                        receiver.bad += 1
                self.send_response(204 if good else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _hub_toml(folder: Path, frappe_url: str | None, dsn: str | None) -> Path:
    """The hub's config: SQLite in ``folder``, or PostgreSQL when ``dsn`` names a (throwaway) database."""
    database = [f"postgres_dsn = {json.dumps(dsn)}", 'backend = "postgres"'] if dsn else \
        ['backend = "sqlite"', 'sqlite_path = "hub.db"']
    lines = ["[server]", 'host = "127.0.0.1"', "port = 0", "max_batch = 5000", "[database]", *database,
             "[faces]", "enabled = false", "[log]", 'level = "WARNING"', "[outbound]", "poll_interval_s = 0.2"]
    if frappe_url:
        token = folder / "frappe.token"
        token.write_text("kioskhub:s3cret\n")
        token.chmod(0o600)
        lines += ["[connectors.frappe]", "enabled = true", f'url = "{frappe_url}"', f'token_file = "{token}"',
                  'time_zone = "Asia/Shanghai"', "pull_employees = false"]
    path = folder / "hub.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _hub_admin(config: Path) -> Any:
    """The hub's database, migrated, for setting things up before and beside the hub process."""
    from sync.hub.config import load_hub_config
    from sync.hub.db import hub_db
    return hub_db(load_hub_config(config).database, migrate=True)


@contextlib.contextmanager
def _hub_config(folder: Path, frappe_url: str | None, backend: str, admin_dsn: str) -> Iterator[Path]:
    """A migrated hub config in ``folder``; with PostgreSQL, over a throwaway database dropped afterwards."""
    from kiosk.tools.localhub import temporary_database
    with contextlib.ExitStack() as stack:
        dsn = stack.enter_context(temporary_database(admin_dsn, prefix="kiosk_deliveries_bench")) \
            if backend == "postgres" else None
        config = _hub_toml(folder, frappe_url, dsn)
        with _hub_admin(config):
            pass  # migrate before anything is added
        yield config


@contextlib.contextmanager
def _hub(config: Path) -> Iterator[Any]:
    from kiosk.tools.localhub import HubProcess
    with HubProcess(config, log_path=config.parent / "hub.log") as hub:
        yield hub


def _wait(predicate: Any, what: str, limit_s: float = WAIT_LIMIT_S) -> bool:
    """Poll ``predicate``; False when ``limit_s`` passed first (an error unless the caller counts it)."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            if limit_s == WAIT_LIMIT_S:
                raise click.ClickException(f"timed out waiting for {what}")
            return False
        time.sleep(0.005)
    return True


def deliveries_run(folder: Path, events: int, employees: int, backend: str, admin_dsn: str) -> float:
    """Punches ingested, then signed and delivered: deliveries per second from first upload to last receipt."""
    from sync.hub import devices
    from sync.hub.outbound import queue
    from sync.hub.outbound.events import PUNCH_CREATED
    receiver = CountingReceiver()
    try:
        with _hub_config(folder, None, backend, admin_dsn) as config:
            with _hub_admin(config) as db:
                receiver.secret = queue.add_subscription(db, "webhook", receiver.url, [PUNCH_CREATED]).secrets[0]
                code = devices.create_code(db, "B001", 1)["code"]
            return _deliver(config, code, receiver, events, employees)
    finally:
        receiver.close()


def _deliver(config: Path, code: str, receiver: CountingReceiver, events: int, employees: int) -> float:
    import httpx
    with _hub(config) as hub:
        token = httpx.post(f"{hub.url}/v1/device/register", json={
            "code": code, "device_name": "bench", "software_version": "bench"}).json()["token"]
        bodies = _synthetic_batches(1, events, 1000, employees)
        start = time.perf_counter()
        _ingest(hub.url, [token], bodies)
        _wait(lambda: len(receiver.ids) >= events, f"{events} deliveries")
        elapsed = time.perf_counter() - start
    if receiver.bad:
        raise click.ClickException(f"{receiver.bad} deliveries had a bad signature")
    return events / elapsed


def checkin_latency_run(folder: Path, punches: int, backend: str, admin_dsn: str) -> list[float | None]:
    """Seconds from a punch appended to a kiosk store to its Employee Checkin at the stand-in, per punch
    (None: not there within PUNCH_LIMIT_S)."""
    from kiosk.store.punches import PunchDraft
    from sync.hub import devices
    site = FrappeSite()
    for i in range(punches):
        site.add_employee(f"HR-EMP-{i:05d}", attendance_device_id=f"E{i}")
    with FrappeStandIn(site) as standin, _hub_config(folder, standin.url, backend, admin_dsn) as config, \
            _hub(config) as hub:
        with _hub_admin(config) as db:
            code = devices.create_code(db, "B001", 1)["code"]
        home = _kiosk_home(folder, "latency", hub.url, 500)
        _fill_store(home, 0)
        with _open(home) as store:  # the roster is ready before the clock starts
            for i in range(punches):
                if store.roster.get(f"E{i}") is None:
                    store.roster.add(f"E{i}", "Bench Person")
        _register(home, hub.url, code)
        agent_log = (folder / "agent.log").open("wb")
        agent = subprocess.Popen([sys.executable, "-m", "kiosk", "sync", "run", "--config", str(home)],
                                 stdout=subprocess.DEVNULL, stderr=agent_log)
        delays: list[float | None] = []
        try:
            time.sleep(3.0)  # the agent process starts and registers its watch job
            with _open(home) as store:
                for i in range(punches):  # one employee each: Frappe keeps one log per employee and second
                    start = time.monotonic()
                    store.punches.append(PunchDraft(f"E{i}", "card", "verified"))
                    done = len(site.checkins)
                    if _wait(lambda n=done: len(site.checkins) > n, "the Employee Checkin", PUNCH_LIMIT_S):
                        delays.append(site.checkins[done]["received_monotonic"] - start)
                    else:
                        delays.append(None)
                        _agent_alive(agent, folder / "agent.log")
                    time.sleep(PUNCH_GAP_S)
        finally:
            agent.terminate()
            agent.wait(timeout=30)
            agent_log.close()
    return delays


def _agent_alive(agent: subprocess.Popen, log_path: Path) -> None:
    if agent.poll() is not None:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise click.ClickException(f"`kiosk sync run` exited with {agent.returncode}:\n{tail}")


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def run(events: int, employees: int, latency_punches: int, repeats: int, backend: str = "sqlite",
        admin_dsn: str = "") -> dict[str, Any]:
    """Both parts ``repeats`` times; the figures with their spread and the machine's load around them."""
    rates, p50s, every, missed = [], [], [], 0
    load_before = os.getloadavg()
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-deliveries-") as tmp:
            rates.append(deliveries_run(Path(tmp), events, employees, backend, admin_dsn))
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-checkin-") as tmp:
            delays = checkin_latency_run(Path(tmp), latency_punches, backend, admin_dsn)
        timed = [d for d in delays if d is not None]
        if timed:
            p50s.append(statistics.median(timed))
        every += timed
        missed += len(delays) - len(timed)
    if not every:
        raise click.ClickException("no punch reached the Frappe stand-in; see the hub log in a kept run")
    result = {"backend": backend, "events": events, "employees": employees, "repeats": repeats,
              "cpu_count": os.cpu_count(),
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in os.getloadavg()],
              "deliveries_per_s": spread(rates, 1), "checkin_latency_p50_s": spread(p50s),
              "checkin_latency_p95_s": round(sorted(every)[max(0, math.ceil(0.95 * len(every)) - 1)], 3),
              "checkin_latency_max_s": round(max(every), 3), "latency_samples": len(every),
              "latency_missed": missed}
    return result


def show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(result)
        return
    events, employees, repeats = result["events"], result["employees"], result["repeats"]
    latency_punches = (result["latency_samples"] + result["latency_missed"]) // repeats
    rate, p50 = result["deliveries_per_s"], result["checkin_latency_p50_s"]
    backend = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[result["backend"]]
    click.echo(f"outbound benchmark: {backend} hub, {repeats} run(s), {result['cpu_count']} CPU cores, load average "
               f"{result['load_avg_before']} before, {result['load_avg_after']} after (shared machine: noisy)")
    click.echo(f"  webhooks: {events} punches of {employees} employees, ingest -> signed -> verified at a local "
               f"receiver: {rate['min']} / {rate['median']} / {rate['max']} deliveries/s (min/median/max)")
    click.echo(f"  punch at a kiosk (`kiosk sync run`) -> Employee Checkin at the Frappe stand-in, "
               f"{latency_punches} punches per run: p50 {p50['min']} / {p50['median']} / {p50['max']} s "
               f"(min/median/max of runs); p95 {result['checkin_latency_p95_s']} s, max "
               f"{result['checkin_latency_max_s']} s; {result['latency_missed']} missed (not there within "
               f"{PUNCH_LIMIT_S:.0f} s)")


@click.command("deliveries")
@click.option("--events", default=5000, show_default=True, help="Punches (webhook deliveries) per run.")
@click.option("--employees", default=200, show_default=True, help="Distinct employees among them (order is kept "
              "per employee, so one employee's events go one at a time).")
@click.option("--latency-punches", default=15, show_default=True, type=click.IntRange(1, 1000),
              help="Punches timed from kiosk to Employee Checkin per run.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 20), help="Runs of each part.")
@click.option("--db", "backend", type=click.Choice(["sqlite", "postgres"]), default="sqlite", show_default=True,
              help="Hub database backend (postgres: a throwaway database per run, dropped afterwards).")
@click.option("--pg-dsn", default=None, help="PostgreSQL server for the throwaway databases "
              "[default: $KIOSK_TEST_PG_DSN or 127.0.0.1:5432, user postgres].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_deliveries(events: int, employees: int, latency_punches: int, repeats: int, backend: str,
                     pg_dsn: str | None, as_json: bool) -> None:
    """Webhook deliveries/s to a local verifying receiver, and punch -> Employee Checkin latency (Frappe stand-in);
    a throwaway hub (SQLite in a temp folder, or a PostgreSQL database), no config needed."""
    from kiosk.tools.localhub import admin_dsn
    show(run(events, employees, latency_punches, repeats, backend, pg_dsn or admin_dsn()), as_json)
