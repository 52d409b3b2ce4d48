"""Admin mode's actions on the running kiosk: employee list, erase, cards, manual punch, device health.

Plain functions over the daemon's store and devices; each change is audited as ``kiosk-admin``.
Refusals are UiError reason codes the screen translates.
"""

from __future__ import annotations

import logging
import threading
from zoneinfo import ZoneInfo

from kiosk.base.errors import InvalidInput, KioskError, NeedsConfirmation
from kiosk.base.events import Event, EventKind
from kiosk.base.timeutil import parse_iso, parse_local_time
from kiosk.punching.policy import punch_detail
from kiosk.punching.record import record_correction
from kiosk.store.punches import NOTE_MAX_CHARS
from kiosk.ui.auth import ACTOR
from kiosk.ui.errors import UiError, from_kiosk_error

log = logging.getLogger(__name__)

EMPLOYEES_MAX = 500


def _employee_dict(emp) -> dict:  # noqa: ANN001 - roster Employee
    return {"id": emp.id, "name": emp.name, "active": emp.active, "branch": emp.branch, "cards": list(emp.cards),
            "templates": emp.templates,
            "quality": round(emp.best_quality, 2) if emp.best_quality is not None else None}


def list_employees(store, search: str = "", include_inactive: bool = False) -> list[dict]:  # noqa: ANN001
    """Employees (matching ``search`` in id or name), with cards, template count and best quality."""
    people = store.roster.list(include_inactive=include_inactive, search=search.strip() or None)
    return [_employee_dict(e) for e in people[:EMPLOYEES_MAX]]


def require_employee(store, employee_id: str):  # noqa: ANN001, ANN201
    employee = store.roster.get(employee_id)
    if employee is None or not employee.active:
        raise UiError("no_such_employee", status=404, employee_id=employee_id)
    return employee


def erase(store, employee_id: str, reason: str) -> dict:  # noqa: ANN001
    """Erase a person's templates (overwritten) and cards; their punches stay. It cannot be undone: the
    reason is required, for the audit log."""
    reason = (reason or "").strip()
    if not reason:
        raise UiError("erase_reason_required")
    require_employee(store, employee_id)
    try:
        erased = store.roster.erase(employee_id, actor=ACTOR, reason=reason[:200])
    except KioskError as exc:
        raise from_kiosk_error(exc) from None
    return {"employee_id": employee_id, **erased}


def add_card(store, employee_id: str, card: str) -> dict:  # noqa: ANN001
    require_employee(store, employee_id)
    try:
        card = store.roster.normalise_card(card)
    except InvalidInput:
        raise UiError("bad_card") from None
    owner = store.roster.by_card(card)
    if owner is not None and owner.id != employee_id:
        raise UiError("card_taken", status=409, employee_id=owner.id, card=card)
    try:
        store.roster.add_card(employee_id, card, actor=ACTOR)
    except KioskError as exc:
        raise from_kiosk_error(exc) from None
    return {"employee_id": employee_id, "card": card}


def remove_card(store, employee_id: str, card: str) -> dict:  # noqa: ANN001
    employee = require_employee(store, employee_id)
    if card not in employee.cards:
        raise UiError("no_such_card", status=404, card=card)
    store.roster.remove_card(card, actor=ACTOR)
    return {"employee_id": employee_id, "card": card}


def manual_punch(daemon, employee_id: str, reason: str, at_text: str = "", direction: str = "",  # noqa: ANN001
                 confirmed: bool = False) -> dict:
    """An admin's punch for someone (a correction): now or for a missed time today or before, with a
    direction (else the kiosk's rule) and a reason kept in the punch and the audit log."""
    reason = (reason or "").strip()
    if not reason:
        raise UiError("reason_required")
    if len(reason) > NOTE_MAX_CHARS:
        raise UiError("reason_too_long", limit=NOTE_MAX_CHARS)
    if direction not in ("", "auto", "IN", "OUT", "none"):
        raise UiError("bad_request")
    employee = require_employee(daemon.store, employee_id)
    tz = ZoneInfo(daemon.config.device.timezone)
    try:
        at = parse_local_time(at_text, tz, daemon.clock.now().utc) if at_text.strip() else None
    except ValueError:
        raise UiError("bad_time", time=at_text) from None
    chosen = None if direction in ("", "auto") else "" if direction == "none" else direction
    try:
        recorded = record_correction(daemon.store, daemon.clock, daemon.config.punch, tz, employee_id, note=reason,
                                     actor=ACTOR, at=at, direction=chosen, confirmed=confirmed)
    except NeedsConfirmation as exc:
        raise UiError("confirm_needed", status=409, detail=exc.what) from None
    except KioskError as exc:
        raise from_kiosk_error(exc) from None
    punch, reading = recorded.punch, recorded.reading
    local = parse_iso(punch.ts_utc).astimezone(tz).strftime("%H:%M")
    daemon.bus.publish(Event(EventKind.PUNCHED, employee_id=employee_id, name=employee.name, local_time=local,
                             method="manual", punch_id=punch.id, direction=punch.direction or None,
                             detail=punch_detail(punch.flags, reading.state)))
    if reading.state != "verified":
        daemon.bus.publish(Event(EventKind.TIME_UNVERIFIED, punch_id=punch.id))
    return {"employee_id": employee_id, "name": employee.name, "punch_id": punch.id, "local_time": local,
            "direction": punch.direction, "kind": punch.kind, "clock_state": reading.state}


def health(daemon) -> dict:  # noqa: ANN001 - KioskDaemon
    """Devices, backlog, last sync, clock, model id: what the health page shows."""
    from kiosk.store.syncstate import SyncState

    report = daemon.health()
    status = SyncState(daemon.store).status()
    report["sync"] = {key: status.get(key) for key in ("registered", "hub_url", "backlog", "rejected",
                                                       "last_push_utc", "last_roster_utc", "last_error")}
    report["enrolments_unsent"] = daemon.store.enrolments.count_unsent()
    report["device"] = {"name": daemon.config.device.name, "branch": daemon.config.device.branch}
    return report


class CardWaiter:
    """Admin mode's "tap the card on the reader": the next card read goes here, not to punching."""

    def __init__(self) -> None:
        self._armed = threading.Event()
        self._got = threading.Event()
        self._card: str | None = None
        self._lock = threading.Lock()

    def tap(self, card: str) -> bool:
        """The daemon's card hook: True when the card was taken for admin mode."""
        with self._lock:
            if not self._armed.is_set():
                return False
            self._card = card
            self._armed.clear()
            self._got.set()
            return True

    def wait(self, timeout_s: float) -> str | None:
        """Arm, then wait for one card (None on timeout)."""
        with self._lock:
            self._card = None
            self._got.clear()
            self._armed.set()
        got = self._got.wait(timeout_s)
        with self._lock:
            self._armed.clear()
            return self._card if got else None
