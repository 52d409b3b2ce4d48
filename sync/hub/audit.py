"""The hub's audit trail: who did what to which record, from the console, the HR API or the CLI."""

from __future__ import annotations

import json
import logging
from typing import Any

from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub.db.base import HubDb, Tx

log = logging.getLogger(__name__)


def record(tx: Tx, actor: str, action: str, target: str = "", **detail: Any) -> None:
    """One audit line in the caller's transaction (so it stands or falls with the change itself)."""
    tx.run("INSERT INTO audit (ts_utc, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
           [iso_utc(utc_now()), actor, action, target, json.dumps(detail, sort_keys=True, ensure_ascii=False)])
    log.info("audit: %s %s %s", actor, action, target)


def recent(db: HubDb, target: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest audit lines, optionally of one target (an employee id, a device id, a user)."""
    sql, params = "SELECT ts_utc, actor, action, target, detail FROM audit", []
    if target is not None:
        sql, params = sql + " WHERE target = ?", [target]
    with db.transaction(write=False) as tx:
        rows = tx.rows(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
    for row in rows:
        row["detail"] = json.loads(row["detail"] or "{}")
    return rows
