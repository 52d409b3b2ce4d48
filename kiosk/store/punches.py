"""The append-only punch log: durable appends, chain verification, export."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from kiosk.base.errors import InvalidInput, NotFound
from kiosk.base.record import CLOCK_STATES, DIRECTIONS, GENESIS_HASH, KINDS, KIOSK_METHODS, Punch, punch_hash
from kiosk.base.text import check_text, csv_cell
from kiosk.base.timeutil import boot_id, iso_utc, monotonic_ns, parse_iso, utc_now, uuid7

if TYPE_CHECKING:
    from kiosk.store.database import Store

log = logging.getLogger(__name__)

NOTE_MAX_CHARS = 500
VERIFY_BATCH = 10000
# Answered from the partial index punches_verified_ts (migration punches_verified_floor_index).
VERIFIED_FLOOR_SQL = "SELECT max(ts_utc) AS ts FROM punches WHERE clock_state = 'verified'"
# A person's latest punch with a direction in a time range, read at every punch (IN/OUT): answered from the
# partial index punches_directed (migration punches_directed_index).
LATEST_DIRECTED_SQL = ("SELECT * FROM punches WHERE employee_id = ? AND ts_utc >= ? AND ts_utc <= ? "
                       "AND direction != '' ORDER BY ts_utc DESC, seq DESC LIMIT 1")


@dataclass(frozen=True)
class PunchDraft:
    """What the caller decides; the log adds id, seq, times and the chain."""

    employee_id: str
    method: str
    clock_state: str = "unverified"
    score: float | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    flags: str = ""
    note: str = ""
    when: datetime | None = None
    direction: str = ""
    kind: str = "punch"
    author: str = ""
    mono_ns: int | None = None  # CLOCK_MONOTONIC read with ``when`` (now, if not given)
    boot_id: str | None = None  # the boot ``mono_ns`` belongs to (this boot, if not given)


@dataclass(frozen=True)
class VerifyReport:
    """Result of walking the chain: ``ok`` or the first bad record and why."""

    checked: int
    ok: bool
    bad_seq: int | None = None
    bad_id: str | None = None
    problem: str = ""
    anchored_at: int | None = None  # seq of the last purged punch the walk started from, if any


class PunchLog:
    """Punches of one store. Appends are durable before they return."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _validate(self, draft: PunchDraft) -> None:
        if draft.method not in KIOSK_METHODS:
            raise InvalidInput(f"unknown punch method {draft.method!r}",
                               fix=f"Use one of: {', '.join(KIOSK_METHODS)}.")
        if draft.clock_state not in CLOCK_STATES:
            raise InvalidInput(f"unknown clock state {draft.clock_state!r}")
        if draft.direction not in ("", *DIRECTIONS):
            raise InvalidInput(f"unknown direction {draft.direction!r}", fix="Use IN, OUT, or none.")
        if draft.kind not in KINDS:
            raise InvalidInput(f"unknown punch kind {draft.kind!r}")
        if len(draft.note) > NOTE_MAX_CHARS:
            raise InvalidInput(f"note is {len(draft.note)} characters; at most {NOTE_MAX_CHARS} are kept",
                               fix="Shorten the note.")
        # The hub refuses a record with such text: it must never be stored here (kiosk.base.text).
        for name in ("note", "flags", "author", "employee_id"):
            check_text(getattr(draft, name), name)

    def append(self, draft: PunchDraft) -> Punch:
        """Store a punch; returns only after the transaction is durably committed."""
        self._validate(draft)
        moment = draft.when or utc_now()
        mono = draft.mono_ns if draft.mono_ns is not None else monotonic_ns()
        boot = draft.boot_id or boot_id()
        with self.store.atomic("recording the punch") as db:
            if db.execute("SELECT 1 FROM employees WHERE id = ?", [draft.employee_id]).fetchone() is None:
                raise NotFound(f"no employee {draft.employee_id!r} on this kiosk",
                               fix="Check the id with `kiosk employee list`.")
            last = db.execute("SELECT seq, hash FROM punches ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            record = {
                "id": str(uuid7(int(moment.timestamp() * 1000))), "seq": seq,
                "employee_id": draft.employee_id, "method": draft.method, "ts_utc": iso_utc(moment),
                "mono_ns": mono, "boot_id": boot, "clock_state": draft.clock_state,
                "score": draft.score, "lat": draft.lat, "lon": draft.lon, "accuracy_m": draft.accuracy_m,
                "flags": draft.flags, "note": draft.note, "prev_hash": prev,
                "direction": draft.direction, "kind": draft.kind, "author": draft.author,
            }
            record["hash"] = punch_hash(record)
            cols = ", ".join(record)
            db.execute(f"INSERT INTO punches ({cols}) VALUES ({', '.join('?' * len(record))})",
                       list(record.values()))
        return Punch(**record)

    def last_for(self, employee_id: str) -> Punch | None:
        rows = self.store.query("SELECT * FROM punches WHERE employee_id = ? ORDER BY seq DESC LIMIT 1",
                                [employee_id])
        return Punch.from_row(rows[0]) if rows else None

    def latest_with_direction(self, employee_id: str, since_utc: str, until_utc: str) -> Punch | None:
        """A person's latest punch with a direction between two UTC times (inclusive), by punch time."""
        rows = self.store.query(LATEST_DIRECTED_SQL, [employee_id, since_utc, until_utc])
        return Punch.from_row(rows[0]) if rows else None

    def last_correction_for(self, employee_id: str) -> Punch | None:
        """A person's newest correction (by when it was made)."""
        rows = self.store.query("SELECT * FROM punches WHERE employee_id = ? AND kind = 'correction' "
                                "ORDER BY seq DESC LIMIT 1", [employee_id])
        return Punch.from_row(rows[0]) if rows else None

    def head(self) -> Punch | None:
        rows = self.store.query("SELECT * FROM punches ORDER BY seq DESC LIMIT 1")
        return Punch.from_row(rows[0]) if rows else None

    def head_seq(self) -> int:
        """The newest punch's seq (0 when there is none), without reading the record."""
        return self.store.query("SELECT coalesce(max(seq), 0) AS s FROM punches")[0]["s"]

    def newest_verified_utc(self) -> datetime | None:
        """The newest punch stored with a verified clock: a correct clock never reads earlier."""
        rows = self.store.query(VERIFIED_FLOOR_SQL)
        return parse_iso(rows[0]["ts"]) if rows and rows[0]["ts"] else None

    def count(self) -> int:
        return self.store.query("SELECT count(*) AS n FROM punches")[0]["n"]

    def iter(self, since_ts: str | None = None, after_seq: int = 0, batch: int = 1000) -> Iterator[Punch]:
        """Punches in seq order, optionally only those at or after a UTC timestamp."""
        for row in self.rows(since_ts, after_seq, batch):
            yield Punch.from_row(row)

    def rows(self, since_ts: str | None = None, after_seq: int = 0, batch: int = 1000) -> Iterator[dict]:
        """Punch rows (column -> value) in seq order, read in batches; ``iter`` without the records."""
        while True:
            sql = "SELECT * FROM punches WHERE seq > ?"
            params: list = [after_seq]
            if since_ts:
                sql += " AND ts_utc >= ?"
                params.append(since_ts)
            rows = self.store.query(sql + " ORDER BY seq LIMIT ?", [*params, batch])
            yield from rows
            if len(rows) < batch:
                return
            after_seq = rows[-1]["seq"]

    def chain_anchor(self) -> tuple[int, str]:
        """(seq, hash) the chain starts from: (0, genesis), or the last punch purged by retention
        after the hub acknowledged it (kiosk.store.syncstate records it in meta in the purge transaction)."""
        seq = self.store.get_meta("chain_anchor_seq")
        if seq is None:
            return 0, GENESIS_HASH
        return int(seq), self.store.get_meta("chain_anchor_hash") or ""

    def verify(self) -> VerifyReport:
        """Walk the whole chain: seq continuity, prev_hash links, and each record's own hash."""
        anchor_seq, prev = self.chain_anchor()
        expected_seq = anchor_seq + 1
        checked = 0
        for row in self.rows(after_seq=anchor_seq, batch=VERIFY_BATCH):
            seq = row["seq"]
            if seq != expected_seq:
                return VerifyReport(checked, False, seq, row["id"],
                                    f"seq jumps from {expected_seq - 1} to {seq}: "
                                    f"{seq - expected_seq} punch(es) missing")
            if row["prev_hash"] != prev:
                return VerifyReport(checked, False, seq, row["id"],
                                    "prev_hash does not match the previous punch: the chain was broken")
            if punch_hash(row) != row["hash"]:
                return VerifyReport(checked, False, seq, row["id"],
                                    "hash does not match the record: it was altered after it was stored")
            prev, expected_seq, checked = row["hash"], seq + 1, checked + 1
        return VerifyReport(checked, True, anchored_at=anchor_seq or None)


def export_punches(punches: Iterator[Punch], fmt: str, out: io.TextIOBase) -> int:
    """Write punches as JSON lines or CSV; returns how many were written."""
    count = 0
    if fmt == "csv":
        writer = None
        for punch in punches:
            row = punch.to_dict()
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
            count += 1
        return count
    for punch in punches:
        out.write(json.dumps(punch.to_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count
