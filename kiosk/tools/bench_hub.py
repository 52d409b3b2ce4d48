"""`kiosk bench hub`: ingest rate, offline-backlog drain time and punch-to-hub latency, over real HTTP.

Everything is real and local: the hub is a `kiosk hub serve` child process (SQLite in a temp folder,
or a throwaway PostgreSQL database), kiosks are SQLCipher stores pushed by the real agent code, one
process per kiosk, and latency is measured with a `kiosk sync run` child process watching a store
that this process appends to, as the daemon would.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kiosk.base.record import GENESIS_HASH, punch_hash
from kiosk.base.timeutil import iso_utc, utc_now, uuid7
from kiosk.cli.util import echo_json
from kiosk.store.keys import write_key_file

BENCH_MODEL = "be" * 32
STORE_CHUNK = 2000


def _hub_toml(folder: Path, backend: str, dsn: str | None, workers: int) -> Path:
    lines = ["[server]", 'host = "127.0.0.1"', "port = 0", f"workers = {workers}", "max_batch = 5000",
             "[database]", f'backend = "{backend}"']
    if backend == "postgres":
        lines += [f"postgres_dsn = {json.dumps(dsn)}", "pool_size = 8"]
    else:
        lines.append('sqlite_path = "hub.db"')
    lines += ["[faces]", "enabled = false", "[log]", 'level = "WARNING"']
    path = folder / "hub.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _kiosk_home(folder: Path, name: str, hub_url: str, batch: int) -> Path:
    home = folder / name
    home.mkdir()
    write_key_file(home / "kiosk-db.key")
    (home / "kiosk.toml").write_text(
        f'[device]\nname = "{name}"\nbranch = "B001"\n[store]\npath = "kiosk.db"\nkey_file = "kiosk-db.key"\n'
        f'[log]\nlevel = "WARNING"\n[sync]\nhub_url = "{hub_url}"\nbatch_size = {batch}\n'
        "push_interval_s = 600\nheartbeat_interval_s = 600\nroster_interval_s = 600\n")
    return home / "kiosk.toml"


def _open(config_path: Path, create: bool = False) -> Any:
    from kiosk.config import load_config
    from kiosk.store.database import open_store
    return open_store(load_config(config_path), create=create)


def _fill_store(config_path: Path, count: int) -> None:
    from kiosk.store.punches import PunchDraft
    with _open(config_path, create=True) as store:
        store.roster.add("E1", "Bench Person")
        for start in range(0, count, STORE_CHUNK):
            with store.atomic():
                for _ in range(min(STORE_CHUNK, count - start)):
                    store.punches.append(PunchDraft("E1", "card", "verified", score=0.5))


def _register(config_path: Path, hub_url: str, code: str) -> None:
    from kiosk.config import load_config
    from sync.agent import Agent
    config = load_config(config_path)
    with _open(config_path) as store:
        agent = Agent(config, store, model=(BENCH_MODEL, 512))
        agent.register(hub_url, code)
        agent.close()


def _drain_worker(config_path: str, go: Any, results: Any) -> None:
    """One kiosk: wait for the start signal, then push the whole backlog with the real agent."""
    from kiosk.config import load_config
    from sync.agent import Agent
    config = load_config(Path(config_path))
    with _open(Path(config_path)) as store:
        agent = Agent(config, store, model=(BENCH_MODEL, 512))
        results.put(("ready", 0.0))
        go.wait()
        report = agent.push()
        results.put((report.accepted + report.duplicates, time.time()))
        agent.close()


def _synthetic_batches(devices: int, per_device: int, batch: int, employees: int = 1) -> list[list[bytes]]:
    """Valid, hash-chained punches per device (of employees E1..E<employees> in turn), as request bodies."""
    out = []
    for _ in range(devices):
        prev, records = GENESIS_HASH, []
        for seq in range(1, per_device + 1):
            rec = {"id": str(uuid7()), "seq": seq, "employee_id": f"E{(seq - 1) % employees + 1}", "method": "face",
                   "ts_utc": iso_utc(utc_now()), "mono_ns": time.monotonic_ns(), "boot_id": "bench",
                   "clock_state": "verified", "score": 0.62, "lat": None, "lon": None, "accuracy_m": None,
                   "flags": "", "note": "", "prev_hash": prev}
            rec["hash"] = prev = punch_hash(rec)
            records.append(rec)
        out.append([json.dumps({"punches": records[i:i + batch]}).encode() for i in range(0, per_device, batch)])
    return out


def _ingest(hub_url: str, tokens: list[str], bodies: list[list[bytes]]) -> float:
    """Concurrent clients posting pre-built batches; returns the wall time in seconds."""
    import httpx
    errors: list[str] = []

    def post_all(token: str, device_bodies: list[bytes]) -> None:
        with httpx.Client(base_url=hub_url, timeout=120,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as c:
            for body in device_bodies:
                resp = c.post("/v1/device/punches", content=body)
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")

    threads = [threading.Thread(target=post_all, args=pair, name=f"ingest-{i}")
               for i, pair in enumerate(zip(tokens, bodies, strict=True))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise click.ClickException(f"ingest failed: {errors[0]}")
    return time.perf_counter() - start


def _latency(folder: Path, hub_url: str, code: str, hr_token: str, count: int, gap_s: float) -> list[float]:
    """Punches appended on the daemon's connection; time until HR can read each at the hub."""
    import httpx

    from kiosk.store.punches import PunchDraft
    config_path = _kiosk_home(folder, "latency", hub_url, 500)
    _fill_store(config_path, 0)
    _register(config_path, hub_url, code)
    agent = subprocess.Popen([sys.executable, "-m", "kiosk", "sync", "run", "--config", str(config_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hr = httpx.Client(base_url=hub_url, headers={"Authorization": f"Bearer {hr_token}"}, timeout=30)
    since = _last_cursor(hr, 0)
    delays: list[float] = []
    try:
        time.sleep(3.0)  # the agent process starts and registers its watch job
        with _open(config_path) as store:
            for _ in range(count):
                punch = store.punches.append(PunchDraft("E1", "card", "verified"))
                start = time.perf_counter()
                while time.perf_counter() - start < 30:
                    resp = hr.get("/v1/hr/punches", params={"since": since})
                    if punch.id in resp.text:
                        delays.append(time.perf_counter() - start)
                        since = int(resp.headers["X-Next-Cursor"])
                        break
                    time.sleep(0.01)
                time.sleep(gap_s)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        hr.close()
    return delays


def _last_cursor(hr: Any, since: int) -> int:
    while True:
        resp = hr.get("/v1/hr/punches", params={"since": since, "limit": 100000})
        since = int(resp.headers["X-Next-Cursor"])
        if resp.headers["X-More"] != "true":
            return since


@contextlib.contextmanager
def _hub(folder: Path, backend: str, admin_dsn: str, workers: int) -> Iterator[tuple[Any, Path]]:
    from kiosk.tools.localhub import HubProcess, temporary_database
    with contextlib.ExitStack() as stack:
        dsn = stack.enter_context(temporary_database(admin_dsn, prefix="kiosk_hub_bench")) \
            if backend == "postgres" else None
        config = _hub_toml(folder, backend, dsn, workers)
        hub = stack.enter_context(HubProcess(config, log_path=folder / "hub.log"))
        yield hub, config


def _hub_admin(config: Path) -> Any:
    from sync.hub.config import load_hub_config
    from sync.hub.db import hub_db
    return hub_db(load_hub_config(config).database)


@click.command("hub")
@click.option("--punches", "count", default=20000, show_default=True, help="Punches for the ingest and drain runs.")
@click.option("--devices", default=4, show_default=True, help="Kiosks pushing at once.")
@click.option("--db", "backend", type=click.Choice(["sqlite", "postgres"]), default="sqlite", show_default=True,
              help="Hub database backend.")
@click.option("--batch", default=500, show_default=True, help="Punches per request (the agent's default).")
@click.option("--workers", default=1, show_default=True, help="Hub worker processes (PostgreSQL only).")
@click.option("--latency-punches", default=20, show_default=True, help="Punches timed from store to hub.")
@click.option("--pg-dsn", default=None, help="PostgreSQL server for a throwaway database "
              "[default: $KIOSK_TEST_PG_DSN or 127.0.0.1:5432, user postgres].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_hub(count: int, devices: int, backend: str, batch: int, workers: int, latency_punches: int,
              pg_dsn: str | None, as_json: bool) -> None:
    """Hub ingest rate, offline-backlog drain time and punch-to-hub p50 latency, over real HTTP."""
    from kiosk.tools.localhub import admin_dsn
    from sync.hub import devices as hub_devices
    per_device = max(1, count // devices)
    total = per_device * devices
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-hub-") as tmp, \
            _hub(Path(tmp), backend, pg_dsn or admin_dsn(), workers) as (hub, hub_config):
        folder = Path(tmp)
        with _hub_admin(hub_config) as db:
            codes = [hub_devices.create_code(db, "B001", 1)["code"] for _ in range(2 * devices + 1)]
            hr_token = hub_devices.create_api_token(db, "hr", "bench")["token"]
        tokens = []
        import httpx
        for i in range(devices):
            answer = httpx.post(f"{hub.url}/v1/device/register", json={
                "code": codes[i], "device_name": f"ingest-{i}", "software_version": "bench"}).json()
            tokens.append(answer["token"])
        bodies = _synthetic_batches(devices, per_device, batch)
        ingest_s = _ingest(hub.url, tokens, bodies)

        build_start = time.perf_counter()
        homes = [_kiosk_home(folder, f"kiosk-{i}", hub.url, batch) for i in range(devices)]
        for i, home in enumerate(homes):
            _fill_store(home, per_device)
            _register(home, hub.url, codes[devices + i])
        build_s = time.perf_counter() - build_start
        drain_s = _drain(homes, total)
        delays = _latency(folder, hub.url, codes[-1], hr_token, latency_punches, 0.2)
    result = {
        "backend": backend, "workers": workers, "devices": devices, "punches": total, "batch": batch,
        "cpu_count": os.cpu_count(),
        "ingest_punches_per_s": round(total / ingest_s, 1), "ingest_s": round(ingest_s, 2),
        "drain_s": round(drain_s, 2), "drain_punches_per_s": round(total / drain_s, 1),
        "latency_p50_s": round(statistics.median(delays), 3) if delays else None,
        "latency_p95_s": round(sorted(delays)[int(0.95 * (len(delays) - 1))], 3) if delays else None,
        "latency_max_s": round(max(delays), 3) if delays else None, "latency_samples": len(delays),
        "backlog_build_s": round(build_s, 1),
    }
    _print(result, as_json)


def _drain(homes: list[Path], total: int) -> float:
    """Every kiosk pushes its offline backlog at once (one process each); wall time until all are done."""
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_drain_worker, args=(str(h), go, results), name=f"drain-{i}")
             for i, h in enumerate(homes)]
    for proc in procs:
        proc.start()
    for _ in procs:  # every child has imported and opened its store before the clock starts
        results.get(timeout=120)
    start = time.time()
    go.set()
    done = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    pushed = sum(n for n, _ in done)
    if pushed != total:
        raise click.ClickException(f"drain pushed {pushed} of {total} punches")
    return max(t for _, t in done) - start


def _print(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(r)
        return
    click.echo(f"hub benchmark: {r['backend']} ({r['workers']} worker(s)), {r['devices']} devices, "
               f"{r['punches']} punches, batch {r['batch']}, {r['cpu_count']} CPU cores (shared: figures are noisy)")
    click.echo(f"  ingest, pre-built batches, {r['devices']} concurrent clients:   "
               f"{r['ingest_punches_per_s']:>9.1f} punches/s ({r['ingest_s']} s)")
    click.echo(f"  drain of a {r['punches']}-punch offline backlog (real agents): {r['drain_s']:>9.2f} s "
               f"({r['drain_punches_per_s']} punches/s)")
    click.echo(f"  punch -> visible at the hub (running `kiosk sync run`, {r['latency_samples']} punches): "
               f"p50 {r['latency_p50_s']} s, p95 {r['latency_p95_s']} s, max {r['latency_max_s']} s")
    click.echo(f"  (building the backlog in {r['devices']} SQLCipher stores took {r['backlog_build_s']} s; "
               "not counted)")

