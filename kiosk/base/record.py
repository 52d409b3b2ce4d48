"""The punch record: its fields, canonical form and hash chain (shared by kiosk and hub)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

KIOSK_METHODS: tuple[str, ...] = ("face", "card", "card+face", "manual")  # what a kiosk records
METHODS: tuple[str, ...] = (*KIOSK_METHODS, "field")  # field: made at the hub from a paired phone (sync/hub/field)
CLOCK_STATES: tuple[str, ...] = ("verified", "unverified")
DIRECTIONS: tuple[str, ...] = ("IN", "OUT")  # "" is no direction
KINDS: tuple[str, ...] = ("punch", "correction")
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Punch:
    """One append-only attendance record, exactly as stored and as sent to the hub."""

    id: str
    seq: int
    employee_id: str
    method: str
    ts_utc: str
    mono_ns: int
    boot_id: str
    clock_state: str
    score: float | None
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    flags: str
    note: str
    prev_hash: str
    hash: str
    direction: str = ""  # IN (上班) / OUT (下班), or "" when the kiosk does not tell
    kind: str = "punch"  # "correction": made by hand (kiosk admin, hub HR), possibly for a past time
    author: str = ""  # who made a correction

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Punch:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


PUNCH_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Punch))
"""The punch's columns, in order: the one list the kiosk's table, the wire model (sync.protocol.PunchIn),
the hub's table and HR's export are built from or checked against."""
HASHED_FIELDS = tuple(name for name in PUNCH_FIELDS if name != "hash")
LATER_FIELDS: dict[str, Any] = {"direction": "", "kind": "punch", "author": ""}
"""Fields added after the first release, with their defaults: a field at its default is left out of the
hash, so punches stored (and hashed) before the field existed still verify, on the kiosk and at the hub."""


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The bytes the hash covers: every field but ``hash`` (later fields only when set), sorted keys,
    compact JSON, UTF-8."""
    body = {name: record[name] for name in HASHED_FIELDS
            if name not in LATER_FIELDS or record.get(name, LATER_FIELDS[name]) != LATER_FIELDS[name]}
    for name in ("score", "lat", "lon", "accuracy_m"):
        value = body[name]
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
            body[name] = value
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def punch_hash(record: dict[str, Any]) -> str:
    """SHA-256 over the canonical record, which includes ``prev_hash`` (so the hashes form a chain)."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()
