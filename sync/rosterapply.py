"""Apply a roster page from the hub to the kiosk's store: new hires, changes, and leavers erased.

One page is one transaction, together with the cursor that follows it: a crash halfway means the
page is fetched and applied again (every step is idempotent). For people the hub manages, the
hub is authoritative for name, cards and the templates it sent (source 'hub'); templates enrolled
at this kiosk are kept. Leavers are erased as `kiosk employee remove` does: vectors overwritten
before deletion, cards removed, punches kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.store.database import Store
from kiosk.store.syncstate import SyncState
from sync.protocol import RosterEmployee, RosterPage

log = logging.getLogger(__name__)

HUB_SOURCE = "hub"


@dataclass
class RosterReport:
    """Totals of one roster download."""

    upserted: int = 0
    erased: int = 0
    templates: int = 0
    skipped_templates: int = 0
    pages: int = 0


def _erase(db: Any, employee_id: str) -> bool:
    exists = db.execute("SELECT active FROM employees WHERE id = ?", [employee_id]).fetchone()
    if exists is None:
        return False
    # Overwrite first: with secure_delete the freed pages are then zeroed too.
    db.execute("UPDATE templates SET vector = zeroblob(length(vector)) WHERE employee_id = ?", [employee_id])
    db.execute("DELETE FROM templates WHERE employee_id = ?", [employee_id])
    db.execute("DELETE FROM cards WHERE employee_id = ?", [employee_id])
    db.execute("UPDATE employees SET active = 0, updated_utc = ? WHERE id = ?", [iso_utc(utc_now()), employee_id])
    return bool(exists[0])


def _upsert(db: Any, emp: RosterEmployee, branch: str, model_id: str | None, report: RosterReport) -> None:
    now = iso_utc(utc_now())
    db.execute("INSERT INTO employees (id, name, active, branch, created_utc, updated_utc) VALUES (?, ?, 1, ?, ?, ?) "
               "ON CONFLICT(id) DO UPDATE SET name = excluded.name, active = 1, branch = excluded.branch, "
               "updated_utc = excluded.updated_utc", [emp.employee_id, emp.name, branch, now, now])
    cards = sorted({c.upper() for c in emp.cards})
    db.execute(f"DELETE FROM cards WHERE employee_id = ? OR card_id IN ({', '.join('?' * len(cards))})",
               [emp.employee_id, *cards])
    for card in cards:
        db.execute("INSERT INTO cards (card_id, employee_id, created_utc) VALUES (?, ?, ?)",
                   [card, emp.employee_id, now])
    db.execute("UPDATE templates SET vector = zeroblob(length(vector)) WHERE employee_id = ? AND source = ?",
               [emp.employee_id, HUB_SOURCE])
    db.execute("DELETE FROM templates WHERE employee_id = ? AND source = ?", [emp.employee_id, HUB_SOURCE])
    for tpl in emp.templates:
        try:
            if tpl.model_id != model_id:
                raise ValueError(f"model {tpl.model_id[:12]} is not this kiosk's")
            vec = tpl.vector()
        except ValueError as exc:
            log.warning("skipping a template of %s from the hub: %s", emp.employee_id, exc)
            report.skipped_templates += 1
            continue
        db.execute("INSERT INTO templates (employee_id, model_id, dim, vector, quality, source, created_utc) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", [emp.employee_id, tpl.model_id, int(vec.size), vec.tobytes(),
                                                    tpl.quality, HUB_SOURCE, now])
        report.templates += 1
    report.upserted += 1


def apply_page(store: Store, state: SyncState, page: RosterPage, branch: str, model_id: str | None,
               report: RosterReport) -> None:
    """Apply one page and advance the roster cursor, atomically."""
    erased = []
    with store.atomic("applying the roster from the hub") as db:
        for employee_id in page.deletions:
            if _erase(db, employee_id):
                erased.append(employee_id)
        for emp in page.employees:
            _upsert(db, emp, branch, model_id, report)
        for employee_id in erased:
            store.audit("sync", "employee.erase", employee_id, reason="hub: left the branch or terminated")
        state.set(db, "roster_cursor", page.cursor)
        state.set(db, "roster_model_id", model_id or "")
        state.set(db, "roster_branch", branch)
        state.set(db, "last_roster_utc", iso_utc(utc_now()))
    if erased:
        # Fold the WAL into the main file so the overwritten pages are gone from disk too.
        store.checkpoint()
        log.info("erased %d leaver(s) on the hub's instruction", len(erased))
    report.erased += len(erased)
    report.pages += 1
