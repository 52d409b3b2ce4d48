"""HR's punch feed: every stored punch once, in hub order, as JSON lines or CSV, paged by cursor."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from kiosk.base.record import PUNCH_FIELDS
from kiosk.base.timeutil import iso_utc
from kiosk.time.correction import corrected_utc
from sync.hub.db.base import HubDb

_STORED = ("id", "device_id", "branch", *(name for name in PUNCH_FIELDS if name != "id"), "received_utc", "chain")
EXPORT_COLUMNS = ("cursor", *_STORED, "corrected_ts_utc")
"""HR's columns: the hub cursor, the punch as stored (kiosk.base.record.PUNCH_FIELDS with its device and
branch), how the hub saw it, and the corrected time of an unverified punch."""


def punches_since(db: HubDb, cursor: int, limit: int, branch: str | None = None) -> list[dict[str, Any]]:
    """Punches with a hub cursor above ``cursor`` (oldest first), at most ``limit``."""
    sql = f"SELECT hub_seq AS cursor, {', '.join(_STORED)} FROM punches WHERE hub_seq > ?"
    params: list[Any] = [cursor]
    if branch:
        sql += " AND branch = ?"
        params.append(branch)
    with db.transaction(write=False) as tx:
        rows = tx.rows(sql + " ORDER BY hub_seq LIMIT ?", [*params, limit])
        _correct_unverified(tx, rows)
    return rows


def _correct_unverified(tx: Any, rows: list[dict[str, Any]]) -> None:
    """``corrected_ts_utc``: a verified punch's own time, or an unverified punch's true time from the
    nearest clock anchor of the same device and boot (None while no anchor of that boot is known)."""
    boots = {(r["device_id"], r["boot_id"]) for r in rows if r["clock_state"] != "verified"}
    anchors: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for device_id, boot in boots:
        anchors[(device_id, boot)] = tx.rows("SELECT boot_id, mono_ns, utc FROM clock_anchors "
                                             "WHERE device_id = ? AND boot_id = ?", [device_id, boot])
    for row in rows:
        if row["clock_state"] == "verified":
            row["corrected_ts_utc"] = row["ts_utc"]
            continue
        fixed = corrected_utc(row["mono_ns"], row["boot_id"], anchors.get((row["device_id"], row["boot_id"]), []))
        row["corrected_ts_utc"] = iso_utc(fixed) if fixed is not None else None


def as_json_lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def count_punches(db: HubDb) -> int:
    with db.transaction(write=False) as tx:
        return int(tx.row("SELECT count(*) AS n FROM punches")["n"])
