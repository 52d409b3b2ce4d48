"""HR's punch feed: every stored punch once, in hub order, as JSON lines or CSV, paged by cursor."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sync.hub.store import HubDb

EXPORT_COLUMNS = ("cursor", "id", "device_id", "branch", "seq", "employee_id", "method", "ts_utc", "clock_state",
                  "score", "lat", "lon", "accuracy_m", "flags", "note", "mono_ns", "boot_id", "prev_hash", "hash",
                  "received_utc", "chain")


def punches_since(db: HubDb, cursor: int, limit: int, branch: str | None = None) -> list[dict[str, Any]]:
    """Punches with a hub cursor above ``cursor`` (oldest first), at most ``limit``."""
    sql = ("SELECT hub_seq AS cursor, id, device_id, branch, seq, employee_id, method, ts_utc, clock_state, "
           "score, lat, lon, accuracy_m, flags, note, mono_ns, boot_id, prev_hash, hash, received_utc, chain "
           "FROM punches WHERE hub_seq > ?")
    params: list[Any] = [cursor]
    if branch:
        sql += " AND branch = ?"
        params.append(branch)
    with db.transaction(write=False) as tx:
        return tx.rows(sql + " ORDER BY hub_seq LIMIT ?", [*params, limit])


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
