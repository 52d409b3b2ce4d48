"""`kiosk bench store`: durable punch appends of the encrypted store beside plain sqlite3, in turns; a face
punch with its evidence thumbnail in one transaction beside the punch and the thumbnail committed apart."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from kiosk.cli.util import echo_json
from kiosk.store.database import Store, plain_factory, sqlcipher_factory
from kiosk.store.keys import DbKey
from kiosk.store.punches import PunchDraft
from kiosk.tools.benchkit import fmt_spread, interleave, machine, machine_line, ratio_spread, rounds_option, spread

EVIDENCE_BYTES = 3000  # about what face_thumbnail makes of a 112x112 face
WAL_HEADER_BYTES, WAL_FRAME_HEADER_BYTES = 32, 24
PAGES_SAMPLE = 100  # punches over which the pages written per punch are counted


def _bench_punch() -> PunchDraft:
    return PunchDraft("B0001", "card", "verified", score=0.9)


def wal_pages_per_append(store: Store, draft: PunchDraft, count: int = PAGES_SAMPLE) -> float:
    """Database pages each durable append of ``draft`` writes to the write-ahead log: every one of them is
    encrypted in full (AES-256 and its HMAC) in SQLCipher. Counted from the log's size with automatic
    checkpoints held off for ``count`` appends, then restored."""
    wal = Path(f"{store.path}-wal")
    page = int(store.conn.execute("PRAGMA page_size").fetchone()[0])  # SQLCipher answers with text
    auto = int(store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    store.checkpoint()
    store.conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        for _ in range(count):
            store.punches.append(draft)
        frames = (wal.stat().st_size - WAL_HEADER_BYTES) / (page + WAL_FRAME_HEADER_BYTES)
    finally:
        store.conn.execute(f"PRAGMA wal_autocheckpoint = {auto}")
        store.checkpoint()
    return frames / count


def _append_rate(store: Store, count: int) -> tuple[float, float]:
    """(appends/s, CPU microseconds of this process per append: the work, without the waits for the disk
    and for other processes, so a loaded machine inflates it far less than the rate)."""
    store.roster.add("B0001", "Bench Person", exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        store.punches.append(_bench_punch())
    return count / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / count


def _fresh_rate(folder: Path, name: str, connect: Callable[[Path], object],
                count: int) -> tuple[float, float, float]:
    """(appends/s, CPU us per append, pages written per append) into a new database (the same size for every
    round and both contenders); the pages are counted after the timed appends."""
    path = folder / f"{name}.db"
    for leftover in folder.glob(f"{name}.db*"):
        leftover.unlink()
    with Store(connect(path), path) as store:
        store.migrate()
        rate, cpu = _append_rate(store, count)
        return rate, cpu, wal_pages_per_append(store, _bench_punch())


def _face_punch_ms(folder: Path, name: str, key: DbKey, count: int, one_transaction: bool) -> float:
    """Milliseconds per durable face punch with a 112x112 evidence JPEG, into a new encrypted store."""
    from kiosk.punching.record import record_punch
    from kiosk.time.config import ClockConfig
    from kiosk.time.trusted import TrustedClock

    path = folder / f"{name}.db"
    for leftover in folder.glob(f"{name}.db*"):
        leftover.unlink()
    thumbnail = secrets.token_bytes(EVIDENCE_BYTES)
    with Store.open(path, key, create=True) as store:
        store.roster.add("B0001", "Bench Person")
        clock = TrustedClock(ClockConfig())
        start = time.perf_counter()
        for _ in range(count):
            if one_transaction:
                record_punch(store, clock, "B0001", "face", score=0.9, evidence=thumbnail)
            else:  # the punch, then its thumbnail in a second durable commit
                punch = record_punch(store, clock, "B0001", "face", score=0.9).punch
                store.evidence.add(punch.id, thumbnail)
        return (time.perf_counter() - start) * 1000 / count


def _open_ms(path: Path, key: DbKey) -> float:
    start = time.perf_counter()
    store = Store.open(path, key)
    store.punches.head()
    ms = (time.perf_counter() - start) * 1000
    store.close()
    return ms


@click.command("store")
@click.option("--punches", "count", default=500, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Punches to append per store and round.")
@click.option("--opens", default=20, show_default=True, type=click.IntRange(1, 100_000),
              help="Times to open the store for the open-time figure.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Where to create the bench databases (default: a temp dir; use the kiosk's disk).")
@rounds_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_store(count: int, opens: int, directory: Path | None, rounds: int, as_json: bool) -> None:
    """Durable punch appends/s and CPU per punch: SQLCipher vs plain sqlite3 in interleaved rounds, the pages
    written per punch, and the time to open."""
    key = DbKey(secrets.token_bytes(32), "bench")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        folder = Path(tmp)
        appends = interleave({
            "sqlcipher": lambda: _fresh_rate(folder, "enc", lambda p: sqlcipher_factory(p, key), count),
            "sqlite": lambda: _fresh_rate(folder, "plain", plain_factory, count),
        }, rounds)
        rates = {name: [rate for rate, _, _ in runs] for name, runs in appends.items()}
        cpu_us = {name: [cpu for _, cpu, _ in runs] for name, runs in appends.items()}
        pages = {name: [page for _, _, page in runs] for name, runs in appends.items()}
        open_ms = [_open_ms(folder / "enc.db", key) for _ in range(opens)]
        face = interleave({
            "one": lambda: _face_punch_ms(folder, "one", key, count, True),
            "two": lambda: _face_punch_ms(folder, "two", key, count, False),
        }, rounds)
    result = {
        "machine": machine(), "punches": count, "rounds": rounds,
        "sqlcipher_punches_per_s": spread(rates["sqlcipher"], 1), "sqlite_punches_per_s": spread(rates["sqlite"], 1),
        "sqlcipher_vs_sqlite": ratio_spread(rates["sqlcipher"], rates["sqlite"]),
        "cpu_us_per_punch": {"sqlcipher": spread(cpu_us["sqlcipher"], 1), "sqlite": spread(cpu_us["sqlite"], 1),
                             "sqlcipher_vs_sqlite": ratio_spread(cpu_us["sqlite"], cpu_us["sqlcipher"])},
        "pages_per_punch": {"sqlcipher": spread(pages["sqlcipher"], 2), "sqlite": spread(pages["sqlite"], 2)},
        "open_ms": spread(open_ms, 2),
        "face_punch_with_evidence_ms": {"one_transaction": spread(face["one"], 2),
                                        "two_transactions": spread(face["two"], 2),
                                        "ratio": ratio_spread(face["one"], face["two"])},
    }
    if as_json:
        echo_json(result)
        return
    click.echo(machine_line(result["machine"]))
    click.echo(f"durable punch appends, {count} per store, {rounds} interleaved rounds (synchronous=FULL, WAL):")
    click.echo(f"  SQLCipher (raw key)  {fmt_spread(result['sqlcipher_punches_per_s'], ' punches/s', 1)}")
    click.echo(f"  plain sqlite3        {fmt_spread(result['sqlite_punches_per_s'], ' punches/s', 1)}")
    click.echo(f"  SQLCipher / sqlite3  {fmt_spread(result['sqlcipher_vs_sqlite'], 'x', 3)} (per-round ratio)")
    cpu = result["cpu_us_per_punch"]
    click.echo(f"  CPU per punch        SQLCipher {fmt_spread(cpu['sqlcipher'], ' us', 1)}; "
               f"plain sqlite3 {fmt_spread(cpu['sqlite'], ' us', 1)}")
    click.echo(f"  CPU sqlite3 / SQLCipher {fmt_spread(cpu['sqlcipher_vs_sqlite'], 'x', 3)} (per-round ratio; "
               "load inflates it far less than the rates)")
    written = result["pages_per_punch"]
    click.echo(f"  pages written per punch  SQLCipher {written['sqlcipher']['median']:.2f}, plain sqlite3 "
               f"{written['sqlite']['median']:.2f} (over {PAGES_SAMPLE} more punches; SQLCipher encrypts each "
               "page in full: AES-256 and HMAC-SHA512)")
    click.echo(f"open the store (key, schema check, first read), {opens} opens: {fmt_spread(result['open_ms'], ' ms')}")
    face = result["face_punch_with_evidence_ms"]
    click.echo(f"face punch + evidence thumbnail ({EVIDENCE_BYTES} B), SQLCipher, {count} per store, in turns:")
    click.echo(f"  one transaction (record_punch)     {fmt_spread(face['one_transaction'], ' ms')}")
    click.echo(f"  punch, then thumbnail committed    {fmt_spread(face['two_transactions'], ' ms')}")
    click.echo(f"  one / two                          {fmt_spread(face['ratio'], 'x', 3)} (per-round ratio)")
