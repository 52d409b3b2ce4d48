"""Apply a roster page from the hub to the kiosk's store: new hires, changes, and leavers erased.

One page is one transaction, together with the cursor that follows it: a crash halfway means the
page is fetched and applied again (every step is idempotent). For people the hub manages, the
hub is authoritative for name, cards and the templates it sent (source 'hub'); templates enrolled
at this kiosk are kept, unless the hub says to erase them (HR dropped them, or consent was
withdrawn). Leavers are erased as `kiosk employee remove` does: vectors overwritten
before deletion, cards removed, punches kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def _templates(emp: RosterEmployee, model_id: str | None, report: RosterReport) -> list[tuple]:
    """The hub's templates of this kiosk's model, decoded; the others are counted and skipped."""
    out = []
    for tpl in emp.templates:
        try:
            if tpl.model_id != model_id:
                raise ValueError(f"model {tpl.model_id[:12]} is not this kiosk's")
            out.append((tpl.model_id, tpl.vector(), tpl.quality))
        except ValueError as exc:
            log.warning("skipping a template of %s from the hub: %s", emp.employee_id, exc)
            report.skipped_templates += 1
    return out


def apply_page(store: Store, state: SyncState, page: RosterPage, branch: str, model_id: str | None,
               report: RosterReport) -> None:
    """Apply one page and advance the roster cursor, atomically."""
    erased, own_erased = [], []
    with store.atomic("applying the roster from the hub") as db:
        for employee_id in page.deletions:
            known = store.roster.get(employee_id)
            if known is not None and known.active:
                store.roster.erase(employee_id, actor="sync", reason="hub: left the branch or terminated")
                erased.append(employee_id)
        for emp in page.employees:
            if emp.erase_own_templates:
                own_erased.append(emp.employee_id)
                store.enrolments.drop(emp.employee_id)
            report.templates += store.roster.replace_from_hub(emp.employee_id, emp.name, branch, emp.cards,
                                                              _templates(emp, model_id, report), HUB_SOURCE,
                                                              erase_own=emp.erase_own_templates)
            report.upserted += 1
        state.set(db, "roster_cursor", page.cursor)
        state.set(db, "roster_model_id", model_id or "")
        state.set(db, "roster_branch", branch)
        state.set(db, "last_roster_utc", iso_utc(utc_now()))
    if erased or own_erased:
        # Fold the WAL into the main file so the overwritten pages are gone from disk too.
        store.checkpoint()
        log.info("erased %d leaver(s) and the faces enrolled here of %d person(s) on the hub's instruction",
                 len(erased), len(own_erased))
    report.erased += len(erased)
    report.pages += 1
