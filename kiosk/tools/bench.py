"""`kiosk bench ...`: benchmarks that print numbers, each beside the plain alternative."""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from pathlib import Path

import click

from kiosk.cli.util import echo_json
from kiosk.store.database import Store, plain_factory
from kiosk.store.keys import DbKey
from kiosk.store.punches import PunchDraft


@click.group("bench")
def bench() -> None:
    """Benchmarks that print numbers (each compared with the plain alternative in the same run)."""


def _append_rate(store: Store, count: int) -> float:
    store.roster.add("B0001", "Bench Person")
    start = time.perf_counter()
    for _ in range(count):
        store.punches.append(PunchDraft("B0001", "card", "verified", score=0.9))
    return count / (time.perf_counter() - start)


@bench.command("store")
@click.option("--punches", "count", default=500, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Punches to append per store.")
@click.option("--opens", default=20, show_default=True, type=click.IntRange(1, 100_000),
              help="Times to open the store for the open-time figure.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Where to create the bench databases (default: a temp dir; use the kiosk's disk).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_store(count: int, opens: int, directory: Path | None, as_json: bool) -> None:
    """Durable punch appends/s: SQLCipher vs plain sqlite3, and the time to open the store."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        key = DbKey(secrets.token_bytes(32), "bench")
        enc_path, plain_path = Path(tmp) / "enc.db", Path(tmp) / "plain.db"
        with Store.open(enc_path, key, create=True) as store:
            enc_rate = _append_rate(store, count)
        with Store(plain_factory(plain_path), plain_path) as store:
            store.migrate()
            plain_rate = _append_rate(store, count)
        open_ms = []
        for _ in range(opens):
            start = time.perf_counter()
            store = Store.open(enc_path, key)
            store.punches.head()
            open_ms.append((time.perf_counter() - start) * 1000)
            store.close()
    result = {
        "punches": count,
        "sqlcipher_punches_per_s": round(enc_rate, 1),
        "sqlite_punches_per_s": round(plain_rate, 1),
        "encryption_cost_ratio": round(plain_rate / enc_rate, 3),
        "open_ms_p50": round(statistics.median(open_ms), 2),
        "open_ms_max": round(max(open_ms), 2),
    }
    if as_json:
        echo_json(result)
        return
    click.echo(f"durable punch appends, {count} each (synchronous=FULL, WAL):")
    click.echo(f"  SQLCipher (raw key)  {result['sqlcipher_punches_per_s']:>9.1f} punches/s")
    click.echo(f"  plain sqlite3        {result['sqlite_punches_per_s']:>9.1f} punches/s")
    click.echo(f"  encryption cost      {result['encryption_cost_ratio']:.2f}x slower")
    click.echo(f"open the store (key, schema check, first read): p50 {result['open_ms_p50']} ms, "
               f"max {result['open_ms_max']} ms over {opens} opens")
