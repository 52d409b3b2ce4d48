"""`kiosk hub verify-export`: check an HR export file (JSON lines, CSV or XLSX) row by row, offline.

Each row's record (kiosk.base.record.HASHED_FIELDS) is hashed again and must give its ``hash``; that hash
must carry a valid signature by a key its device registered (kiosk.base.signing); and the local date and
time payroll reads must be the punch's time in the row's time zone. So a row edited anywhere between the
kiosk and payroll is named. Rows of a device registered before kiosks had keys, and HR's corrections made
at the hub, carry no device signature: they are listed as unsigned, not passed silently.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.base.errors import InvalidInput, KioskError
from kiosk.base.record import HASHED_FIELDS, LATER_FIELDS, punch_hash
from kiosk.base.signing import signature_valid
from kiosk.base.text import FORMULA_STARTS
from kiosk.base.timeutil import iso_utc, parse_iso
from sync.hub.attendance import HUB_DEVICE
from sync.hub.devices import KEYS_FORMAT
from sync.hub.field.offline import Claim, claim_challenge, read_claim
from sync.hub.field.webauthn import b64url_decode, verify_assertion

_INTS = ("seq", "mono_ns")
_FLOATS = ("score", "lat", "lon", "accuracy_m")
REQUIRED = (*HASHED_FIELDS, "hash", "device_id", "signature", "key_id")


@dataclass(frozen=True)
class RowVerdict:
    """One data row of the file (``row``: 1 is the first row after the header): ok, unsigned or failed."""

    row: int
    punch_id: str
    status: str  # "ok" | "unsigned" | "failed"
    reason: str = ""


def load_keys(path: Path) -> dict[str, Any]:
    """A keys file written by `kiosk hub device keys`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the keys file {path}: {exc}",
                           fix="Write one with `kiosk hub device keys --out FILE`.") from None
    if not isinstance(data, dict) or data.get("format") != KEYS_FORMAT or not isinstance(data.get("devices"), dict):
        raise InvalidInput(f"{path} is not a device keys file",
                           fix="Write one with `kiosk hub device keys --out FILE`.")
    return data


def read_rows(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The file's kind (json, csv or xlsx) and its rows as column -> value."""
    data = path.read_bytes()
    if data[:2] == b"PK":
        return "xlsx", _xlsx_rows(data)
    text = data.decode("utf-8-sig")
    if text.lstrip().startswith("{"):
        return "json", [json.loads(line) for line in text.splitlines() if line.strip()]
    return "csv", list(csv.DictReader(io.StringIO(text)))


def _xlsx_rows(data: bytes) -> list[dict[str, Any]]:
    from openpyxl import load_workbook
    sheet = load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = [str(c) for c in next(rows, ())]
    return [dict(zip(header, values, strict=False)) for values in rows]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _candidates(row: dict[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    """The record a row holds, typed as the kiosk hashed it. A CSV cell a spreadsheet would run as a formula
    was written with a leading apostrophe (kiosk.base.text.csv_cell); either reading is tried."""
    record: dict[str, Any] = {}
    choices: list[tuple[str, list[str]]] = []
    for name in HASHED_FIELDS:
        value = row.get(name)
        if name in _INTS:
            record[name] = int(value)
        elif name in _FLOATS:
            record[name] = None if value in (None, "") else float(value)
        else:
            text = _text(value) or LATER_FIELDS.get(name, "")
            record[name] = text
            if kind == "csv" and text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
                choices.append((name, [text[1:], text]))
    for picks in itertools.product(*(options for _, options in choices)):
        yield {**record, **{name: pick for (name, _), pick in zip(choices, picks, strict=True)}}


def _hash_holds(row: dict[str, Any], kind: str) -> bool:
    try:
        return any(punch_hash(rec) == _text(row.get("hash")) for rec in _candidates(row, kind))
    except (TypeError, ValueError):
        return False


def _local_time_holds(row: dict[str, Any]) -> str:
    """'' when the row's local date and time are its punch time in its time zone, else what differs."""
    if not row.get("local_date") or not row.get("timezone"):
        return ""  # an export without local columns (the cursor feed's JSON lines may carry them, CSV too)
    when = _text(row.get("corrected_ts_utc")) or _text(row.get("ts_utc"))
    if _text(row.get("clock_state")) == "verified" and when != _text(row.get("ts_utc")):
        return "corrected_ts_utc differs from ts_utc on a verified punch"
    try:
        local = parse_iso(when).astimezone(ZoneInfo(_text(row["timezone"])))
    except (ValueError, ZoneInfoNotFoundError):
        return "the time zone or punch time is not readable"
    day, clock = row["local_date"], row.get("local_time")
    day = (day.date() if isinstance(day, datetime) else day).isoformat() if isinstance(day, date) else _text(day)
    clock = clock.strftime("%H:%M:%S") if isinstance(clock, time | datetime) else _text(clock)
    if (day, clock) != (local.date().isoformat(), local.strftime("%H:%M:%S")):
        return f"local_date/local_time {day} {clock} is not the punch time {when} in {row['timezone']}"
    return ""


def verify_row(number: int, row: dict[str, Any], kind: str, devices: dict[str, Any]) -> RowVerdict:
    """The verdict on one row against the devices' keys (device id -> {"keys": {key id: public key}})."""
    ident, device_id = _text(row.get("id")), _text(row.get("device_id"))
    fail = lambda reason: RowVerdict(number, ident, "failed", reason)  # noqa: E731
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        return fail(f"the file has no column {', '.join(missing)}: export it again from the hub")
    local = _local_time_holds(row)
    if local:
        return fail(local)
    if device_id == HUB_DEVICE and _text(row.get("kind")) == "correction":
        return RowVerdict(number, ident, "unsigned", "a correction made by HR at the hub (not signed by a kiosk)")
    if not _hash_holds(row, kind):
        return fail("the record does not match its hash: a field of the punch was edited")
    device = devices.get(device_id)
    if device is None:
        return fail(f"device {device_id!r} is not known to the hub (or to the keys file)")
    if device.get("passkey") is not None:
        return _field_verdict(number, ident, row, device_id, device["passkey"])
    keys: dict[str, str] = device.get("keys") or {}
    signature, key_id = _text(row.get("signature")), _text(row.get("key_id"))
    if not keys:
        if signature:
            return fail(f"signed, but device {device_id} never registered a key")
        return RowVerdict(number, ident, "unsigned", f"device {device_id} registered before kiosks signed punches")
    if not signature:
        return fail(f"no signature, but device {device_id} signs its punches")
    if key_id not in keys:
        return fail(f"key {key_id!r} is not a key of device {device_id}")
    if not signature_valid(keys[key_id], _text(row.get("hash")), signature):
        return fail(f"the signature does not verify with device {device_id}'s key {key_id}: the hash or "
                    "the signature was edited")
    return RowVerdict(number, ident, "ok")


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _claim_differs(claim: Claim, row: dict[str, Any], device_id: str) -> str:
    """'' when the row is what the phone's offline claim says, else the first field that differs."""
    position = tuple(_number(row.get(name)) for name in ("lat", "lon", "accuracy_m"))
    checks = (("id", claim.id, _text(row.get("id"))), ("device_id", claim.device_id, device_id),
              ("direction", claim.direction, _text(row.get("direction"))),
              ("ts_utc (the phone's time)", iso_utc(parse_iso(claim.phone_ts_utc)), _text(row.get("ts_utc"))),
              ("clock_state", "unverified", _text(row.get("clock_state"))),
              ("position", (claim.lat, claim.lon, claim.accuracy_m), position))
    return next((f"{name} is not what the phone signed offline" for name, signed, got in checks if signed != got), "")


def _field_verdict(number: int, ident: str, row: dict[str, Any], device_id: str,
                   passkey: dict[str, Any]) -> RowVerdict:
    """A field phone's row: its passkey assertion, over the row's hash or over the offline claim."""
    fail = lambda reason: RowVerdict(number, ident, "failed", reason)  # noqa: E731
    if _text(row.get("employee_id")) != passkey.get("employee_id"):
        return fail(f"field phone {device_id} is paired with {passkey.get('employee_id')}, not this row's employee")
    proof = (passkey.get("proofs") or {}).get(ident)
    if proof is None:
        return fail(f"no passkey assertion of field phone {device_id} is kept for this punch")
    try:
        client_data = b64url_decode(proof["client_data_json"], "client_data_json")
        origin = _text(json.loads(client_data).get("origin"))
        if "claim" in proof:
            claim = read_claim(proof["claim"])
            differs = _claim_differs(claim, row, device_id)
            if differs:
                return fail(differs)
            challenge, what = claim_challenge(claim.text), ("passkey assertion over the claim the phone signed "
                                                            "offline (phone time unverified; clip digests not in "
                                                            "the file)")
        else:
            challenge, what = bytes.fromhex(_text(row.get("hash"))), "passkey assertion over the record's hash"
        verify_assertion(passkey["public_key"], 0, client_data, b64url_decode(proof["authenticator_data"], "a"),
                         b64url_decode(proof["signature"], "signature"), challenge, origin)
    except (KioskError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return fail(f"field phone {device_id}'s passkey assertion does not hold: {exc}")
    return RowVerdict(number, ident, "ok", f"{what}, field phone {device_id}")


def verify_file(path: Path, devices: dict[str, Any]) -> list[RowVerdict]:
    """Every data row's verdict, in file order."""
    kind, rows = read_rows(path)
    return [verify_row(number, row, kind, devices) for number, row in enumerate(rows, start=1)]
