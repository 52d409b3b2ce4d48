"""Attendance at the hub: HR's corrections (new records of kind 'correction', never edits), the day sheet
per branch (first IN, last OUT, worked time, exceptions) and the Today summary. A day is a local *work*
day: it starts at the branch's ``day_starts_at`` (as the kiosks' rule), so a night shift stays one day."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from kiosk.base.errors import InvalidInput, NotFound
from kiosk.base.timeutil import iso_utc, utc_now, uuid7, work_day_bounds, work_day_start
from sync.errors import NeedsConfirmation
from sync.hub import audit, export
from sync.hub.accounts import Principal
from sync.hub.branches import zones
from sync.hub.db.base import HubDb, Tx
from sync.hub.devices import list_devices
from sync.hub.ingest import PUNCH_COLUMNS
from sync.hub.outbound.events import emit, punch_events
from sync.protocol import CorrectionIn

log = logging.getLogger(__name__)

HUB_DEVICE = "hub"  # the device id of records the hub itself makes (corrections)
FUTURE_SLACK = timedelta(minutes=1)
SHEET_MAX_PUNCHES = 100_000
EXCEPTIONS = ("missing_in", "missing_out", "unverified_clock", "outside_geofence", "not_on_roster", "correction",
              "absent")


# -- corrections ---------------------------------------------------------------------


def _branch_for(tx: Tx, principal: Principal, employee_id: str, asked: str | None) -> str:
    emp = tx.row("SELECT id FROM employees WHERE id = ?", [employee_id])
    if emp is None:
        raise NotFound(f"no employee {employee_id}", fix="Check the employee id (Employees page or "
                       "GET /v1/hr/employees).")
    mine = [r["branch"] for r in tx.rows("SELECT branch FROM employee_branches WHERE employee_id = ? AND active = 1 "
                                         "ORDER BY branch", [employee_id])]
    branch = asked or next((b for b in mine if principal.sees(b)), None)
    if branch is None:
        raise InvalidInput(f"employee {employee_id} has no branch you may correct",
                           fix="Name the branch the punch belongs to.")
    principal.require_branches([branch])
    return branch


def _others_near(tx: Tx, employee_id: str, moment: datetime, window_s: float) -> list[str]:
    rows = tx.rows("SELECT ts_utc FROM punches WHERE employee_id = ? AND ts_utc >= ? AND ts_utc <= ? "
                   "AND (method = 'manual' OR kind = 'correction') ORDER BY ts_utc",
                   [employee_id, iso_utc(moment - timedelta(seconds=window_s)),
                    iso_utc(moment + timedelta(seconds=window_s))])
    return [r["ts_utc"] for r in rows]


def add_correction(db: HubDb, principal: Principal, body: CorrectionIn, default_tz: str,
                   confirm_window_s: float) -> dict[str, Any]:
    """A punch HR vouches for, at a past local time of the branch, with a direction and a reason."""
    principal.require("corrections.write")
    now = utc_now()
    with db.transaction() as tx:
        branch = _branch_for(tx, principal, body.employee_id, body.branch)
        moment = body.local_moment().replace(tzinfo=zones(tx, default_tz).of(branch))
        if moment > now + FUTURE_SLACK:
            raise InvalidInput("a correction must be at a past time", fix="Give the time the person really came "
                               "or left; a punch for now is made at the kiosk.")
        near = _others_near(tx, body.employee_id, moment, confirm_window_s)
        if near and not body.confirm:
            raise NeedsConfirmation(f"employee {body.employee_id} already has a manual punch or correction at "
                                    f"{', '.join(near)} (UTC), within {int(confirm_window_s)} s of this one",
                                    fix="Check it is not the same; send it again with confirm = true to add it.")
        hub_seq = tx.next_values("punch", 1)
        record = {"id": str(uuid7()), "employee_id": body.employee_id, "branch": branch, "ts_utc": iso_utc(moment),
                  "direction": body.direction, "reason": body.reason, "author": principal.name}
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        tx.run("INSERT INTO punches (hub_seq, id, device_id, branch, seq, employee_id, method, ts_utc, mono_ns, "
               "boot_id, clock_state, flags, note, prev_hash, hash, received_utc, chain, direction, kind, author) "
               "VALUES (?, ?, ?, ?, ?, ?, 'manual', ?, 0, ?, 'verified', '', ?, ?, ?, ?, 'hub', ?, 'correction', ?)",
               [hub_seq, record["id"], HUB_DEVICE, branch, hub_seq, body.employee_id, record["ts_utc"], HUB_DEVICE,
                body.reason, "0" * 64, digest, iso_utc(now), body.direction, principal.name])
        stored = tx.row(f"SELECT {', '.join(PUNCH_COLUMNS)} FROM punches WHERE id = ?", [record["id"]])
        emit(tx, punch_events(tx, [stored]))
        audit.record(tx, principal.name, "punch.correction", body.employee_id, punch_id=record["id"],
                     branch=branch, ts_utc=record["ts_utc"], direction=body.direction, confirmed=bool(near))
    log.info("correction %s for %s by %s", record["id"], body.employee_id, principal.name)
    rows, _, _ = export.query(db, export.PunchFilter(cursor=hub_seq - 1, kind="correction"), 1, default_tz)
    return rows[0]


# -- the day sheet -------------------------------------------------------------------


@dataclass
class SheetRow:
    """One person's day at one branch."""

    employee_id: str
    name: str
    punches: list[dict[str, Any]]
    first_in: str | None = None
    last_out: str | None = None
    worked_s: int | None = None
    exceptions: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"employee_id": self.employee_id, "name": self.name, "first_in": self.first_in,
                "last_out": self.last_out, "worked_s": self.worked_s, "exceptions": self.exceptions or [],
                "punches": [{k: p.get(k) for k in ("id", "local_date", "local_time", "direction", "method", "kind",
                                                   "flags", "clock_state", "note", "author")} for p in self.punches]}


def _in_out(punches: list[dict[str, Any]]) -> tuple[dict | None, dict | None]:
    """First IN and last OUT. Without any direction: the first and the last punch. With some (a kiosk in
    direction mode, an HR correction): punches without one alternate IN, OUT from the one before."""
    if not any(p["direction"] for p in punches):
        return punches[0], (punches[-1] if len(punches) > 1 else None)
    expected, seen = "IN", []
    for punch in punches:
        direction = punch["direction"] or expected
        expected = "OUT" if direction == "IN" else "IN"
        seen.append((direction, punch))
    ins = [p for d, p in seen if d == "IN"]
    outs = [p for d, p in seen if d == "OUT"]
    return (ins[0] if ins else None), (outs[-1] if outs else None)


def _sheet_row(employee_id: str, name: str, punches: list[dict[str, Any]], on_roster: bool) -> SheetRow:
    row = SheetRow(employee_id, name, punches, exceptions=[])
    if not punches:
        row.exceptions.append("absent")
        return row
    first, last = _in_out(punches)
    row.first_in = first["local_time"] if first else None
    row.last_out = last["local_time"] if last else None
    if first and last:
        delta = datetime.fromisoformat(last["corrected_ts_utc"] or last["ts_utc"]) - \
            datetime.fromisoformat(first["corrected_ts_utc"] or first["ts_utc"])
        row.worked_s = max(0, int(delta.total_seconds()))
    checks = [("missing_in", first is None), ("missing_out", last is None),
              ("unverified_clock", any(p["corrected_ts_utc"] is None for p in punches)),
              ("outside_geofence", any("outside_geofence" in (p["flags"] or "").split(",") for p in punches)),
              ("not_on_roster", not on_roster), ("correction", any(p["kind"] == "correction" for p in punches))]
    row.exceptions = [name for name, hit in checks if hit]
    return row


def day_sheet(db: HubDb, principal: Principal, branch: str, day: date, default_tz: str,
              day_starts_at: str) -> list[SheetRow]:
    """Everyone on ``branch``'s roster, and everyone who punched there in the local work day ``day``
    (from ``day_starts_at`` that day to ``day_starts_at`` the next)."""
    principal.scope(branch)
    with db.transaction(write=False) as tx:
        start, end = work_day_bounds(day, zones(tx, default_tz).of(branch), day_starts_at)
    rows, _, _ = export.query(db, export.PunchFilter(start=start, end=end, branches=[branch]), SHEET_MAX_PUNCHES,
                              default_tz)
    with db.transaction(write=False) as tx:
        roster = {r["id"]: r["name"] for r in tx.rows(
            "SELECT e.id, e.name FROM employees e JOIN employee_branches b ON b.employee_id = e.id "
            "WHERE b.branch = ? AND b.active = 1 AND e.active = 1", [branch])}
    by_person: dict[str, list[dict[str, Any]]] = {e: [] for e in roster}
    names = dict(roster)
    for row in sorted(rows, key=lambda r: r["corrected_ts_utc"] or r["ts_utc"]):
        by_person.setdefault(row["employee_id"], []).append(row)
        names.setdefault(row["employee_id"], row["name"] or "")
    return [_sheet_row(e, names[e], by_person[e], e in roster) for e in sorted(by_person)]


def local_today(db: HubDb, branch: str, default_tz: str, day_starts_at: str) -> date:
    """The work day ``branch`` is in now (before ``day_starts_at``: still yesterday's)."""
    with db.transaction(write=False) as tx:
        local = utc_now().astimezone(zones(tx, default_tz).of(branch))
    return work_day_start(local, day_starts_at).date()


def today(db: HubDb, principal: Principal, branch_codes: list[str], default_tz: str,
          offline_after_s: float, day_starts_at: Callable[[str], str]) -> list[dict[str, Any]]:
    """Per branch, in its own local work day: punches so far, who is in, who is not yet, exceptions, devices."""
    fleet = list_devices(db, branches=branch_codes, offline_after_s=offline_after_s)
    out = []
    for branch in branch_codes:
        day = local_today(db, branch, default_tz, day_starts_at(branch))
        sheet = day_sheet(db, principal, branch, day, default_tz, day_starts_at(branch))
        devices = [d for d in fleet if d.branch == branch and d.state != "revoked"]
        out.append({
            "branch": branch, "date": day.isoformat(), "punches": sum(len(r.punches) for r in sheet),
            "present": [r.employee_id for r in sheet if r.punches],
            "not_in": [{"employee_id": r.employee_id, "name": r.name} for r in sheet if not r.punches],
            # Not yet out is normal during the day.
            "exceptions": sum(1 for r in sheet if set(r.exceptions or []) - {"absent", "missing_out"}),
            "devices": len(devices), "devices_offline": [d.device_id for d in devices if d.state != "online"]})
    return out
