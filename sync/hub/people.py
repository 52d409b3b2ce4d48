"""Employees on the hub (HR's side) and the per-branch roster feed devices download.

Every change to a person takes a fresh value of the 'roster' counter and stamps it on all of
that person's branch rows; a device pages through its branch's rows by that value. A row whose
person left (or left the branch) is sent as a deletion, so the device erases them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from kiosk.base.errors import Conflict, InvalidInput, NotFound
from kiosk.base.text import DB_INT_MAX, check_text
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.base.vectors import unit_vector
from kiosk.face.images import check_image
from sync.hub import audit, consents
from sync.hub.db.base import HubDb, Tx
from sync.hub.devices import Device, model_dims_in_use
from sync.hub.faces import HubTemplate, TemplateMaker
from sync.hub.ingest import ROSTER_FLAGS
from sync.protocol import (
    DeviceEnrolment,
    DeviceTemplates,
    EmployeeIn,
    EmployeeOut,
    EmployeePage,
    EmployeePatch,
    EnrolmentResult,
    PhotoProblem,
    PhotoVerdict,
    RosterEmployee,
    RosterPage,
    RosterTemplate,
    TemplateIn,
    encode_vector,
    validation_reason,
)

log = logging.getLogger(__name__)


@dataclass
class Templates:
    """What came of HR's photos and templates for one request."""

    ready: list[HubTemplate]
    photos_used: int
    problems: list[PhotoProblem]
    models_missing: list[str]


def _normalised(vec: np.ndarray) -> np.ndarray:
    return unit_vector(vec)


def decode_photo(text: str, index: int, max_bytes: int) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"photos[{index}] is not valid base64", fix="Send each photo file base64-encoded.") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"photos[{index}] is {len(data)} bytes; at most {max_bytes} are accepted",
                           fix="Send a smaller JPEG (a face 200+ px wide is plenty).")
    check_image(data, f"photos[{index}]")  # from its header, before any decoder sees it
    return data


def known_models(db: HubDb, maker: TemplateMaker) -> dict[str, int | None]:
    """Model ids templates may be stored for: what active devices run and what the hub can make."""
    known: dict[str, int | None] = dict(model_dims_in_use(db))
    known.update(maker.model_ids())
    return known


def prepare_templates(photos: list[str], given: list[TemplateIn], maker: TemplateMaker,
                      known: dict[str, int | None], max_photo_bytes: int) -> Templates:
    """Check HR's templates and compute templates from photos for every model the hub can make."""
    ready: list[HubTemplate] = []
    for i, tpl in enumerate(given):
        if tpl.model_id not in known:
            raise InvalidInput(f"templates[{i}]: unknown model id {tpl.model_id[:12]}...: no device runs it "
                               "and the hub cannot make it", fix="Send templates of a model id the kiosks report.")
        dim = known[tpl.model_id]
        if dim is not None and len(tpl.vector) != dim:
            raise InvalidInput(f"templates[{i}] has {len(tpl.vector)} values; model {tpl.model_id[:12]}... "
                               f"makes {dim}", fix="Send the vector exactly as the model produced it.")
        ready.append(HubTemplate(tpl.model_id, _normalised(np.asarray(tpl.vector)), tpl.quality, "hr"))
    data = [decode_photo(text, i, max_photo_bytes) for i, text in enumerate(photos)]
    makeable = maker.model_ids()
    problems: list[PhotoProblem] = []
    made_by_model: dict[str, list[tuple[int, HubTemplate]]] = {m: [] for m in makeable}
    for i, photo in enumerate(data):
        for model_id in makeable:
            made = maker.make(photo, model_id)
            if isinstance(made, HubTemplate):
                made_by_model[model_id].append((i, HubTemplate(model_id, _normalised(made.vector), made.quality,
                                                               "photo")))
            else:
                problems.append(PhotoProblem(index=i, model_id=model_id, reason=made))
    used = _keep_best(made_by_model, ready, problems) if data else set()
    if data and not makeable:
        problems += [PhotoProblem(index=i, reason="the hub has no face model to make templates with")
                     for i in range(len(data))]
    missing = sorted(m for m in known if m not in makeable) if data else []
    return Templates(ready, len(used), problems, missing)


def _keep_best(made_by_model: dict[str, list[tuple[int, HubTemplate]]], ready: list[HubTemplate],
               problems: list[PhotoProblem]) -> set[int]:
    """Per model, the templates of the best photos (enrollment.photos.best_of) into ``ready``, the others as
    ``not_kept`` problems; returns the photos used for at least one model."""
    from enrollment.photos import PHOTO_TEMPLATES_KEPT, best_of

    used = set()
    for model_id, made in made_by_model.items():
        chosen = best_of(made, lambda item: item[1].quality)
        for position, (index, template) in enumerate(made):
            if position in chosen:
                ready.append(template)
                used.add(index)
            else:
                problems.append(PhotoProblem(index=index, model_id=model_id, reason=f"not_kept: only the "
                                             f"{PHOTO_TEMPLATES_KEPT} best photos of a person are stored"))
    return used


def photo_verdicts(made: Templates, count: int, models: int) -> list[PhotoVerdict]:
    """Each of ``count`` photos: used (a template for at least one of the ``models`` the hub makes), or the
    reasons it was refused. The save reports them after, the photo check before: the same verdicts."""
    out = []
    for index in range(count):
        reasons = [p.reason for p in made.problems if p.index == index]
        out.append(PhotoVerdict(index=index, ok=len(reasons) < max(1, models), reasons=reasons))
    return out


# -- writes -------------------------------------------------------------------------


def _bump(tx: Tx, employee_id: str) -> None:
    value = tx.next_values("roster", 1)
    tx.run("UPDATE employee_branches SET change_seq = ? WHERE employee_id = ?", [value, employee_id])


def _set_cards(tx: Tx, employee_id: str, cards: list[str]) -> None:
    cards = sorted({c.upper() for c in cards})
    if cards:
        where, params = tx.in_list("card_id", cards)
        for row in tx.rows(f"SELECT card_id, employee_id FROM employee_cards WHERE {where}", params):
            if row["employee_id"] != employee_id:
                raise Conflict(f"card {row['card_id']} already belongs to employee {row['employee_id']}",
                               fix=f"Remove it from {row['employee_id']} first (PATCH their cards).")
    tx.run("DELETE FROM employee_cards WHERE employee_id = ?", [employee_id])
    tx.many("INSERT INTO employee_cards (card_id, employee_id) VALUES (?, ?)", [(c, employee_id) for c in cards])


def _set_branches(tx: Tx, employee_id: str, branches: list[str]) -> None:
    wanted = set(branches)
    for row in tx.rows("SELECT branch FROM employee_branches WHERE employee_id = ?", [employee_id]):
        if row["branch"] not in wanted:
            tx.run("UPDATE employee_branches SET active = 0 WHERE employee_id = ? AND branch = ?",
                   [employee_id, row["branch"]])
    for branch in sorted(wanted):
        tx.run("INSERT INTO employee_branches (employee_id, branch, active, change_seq) VALUES (?, ?, 1, 0) "
               "ON CONFLICT (employee_id, branch) DO UPDATE SET active = 1", [employee_id, branch])


def erase_templates(tx: Tx, employee_id: str, sources: list[str] | None = None) -> int:
    """The hub's one erase of face templates (the kiosk's is `kiosk/store/roster.py` `_wipe_templates`): all
    of a person's, or those of ``sources``. The rows are deleted and, once the transaction commits, the
    backend scrubs its files (SQLite: secure_delete zeroes the pages and the WAL is checkpointed and
    truncated; PostgreSQL: VACUUM)."""
    tx.erased = True
    if sources is None:
        return tx.run("DELETE FROM templates WHERE employee_id = ?", [employee_id])
    where, params = tx.in_list("source", sources)
    return tx.run(f"DELETE FROM templates WHERE employee_id = ? AND {where}", [employee_id, *params])


def _add_templates(tx: Tx, employee_id: str, templates: list[HubTemplate], now: str) -> None:
    tx.many("INSERT INTO templates (employee_id, model_id, dim, vector, quality, source, created_utc, scope_branch, "
            "held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(employee_id, t.model_id, int(t.vector.size), t.vector.astype("<f4").tobytes(), t.quality, t.source,
              now, t.scope_branch, int(t.held)) for t in templates])


# -- faces enrolled at kiosks: scoped, held, approved or dropped by HR ---------------------------


DEVICE_SOURCES = "device:%"
"""LIKE pattern of template sources enrolled at kiosks (device_source)."""


def _device_sources(tx: Tx, employee_id: str, device_id: str | None = None, pending_only: bool = True) -> list[str]:
    """Sources (device:ID) of a person's templates enrolled at kiosks (one kiosk's when ``device_id``)."""
    rows = tx.rows("SELECT DISTINCT source FROM templates WHERE employee_id = ? AND source LIKE ?"
                   + (" AND approved_utc IS NULL" if pending_only else ""), [employee_id, DEVICE_SOURCES])
    found = sorted(r["source"] for r in rows)
    return [src for src in found if device_id is None or src == device_source(device_id)]


def device_templates(tx: Tx, employee_id: str) -> list[DeviceTemplates]:
    """A person's faces enrolled at kiosks, per kiosk: where they go (scoped to its branch, held for
    approval, or approved) and when they came."""
    rows = tx.rows("SELECT source, scope_branch, held, approved_utc, count(*) AS n, min(created_utc) AS first, "
                   "max(created_utc) AS last FROM templates WHERE employee_id = ? AND source LIKE ? "
                   "GROUP BY source, scope_branch, held, approved_utc ORDER BY source", [employee_id, DEVICE_SOURCES])
    return [DeviceTemplates(device_id=r["source"].removeprefix("device:"), branch=r["scope_branch"], templates=r["n"],
                            state="approved" if r["approved_utc"] else "held" if r["held"] else "scoped",
                            enrolled_utc=r["first"], last_utc=r["last"]) for r in rows]


def _device_notice(found: list[DeviceTemplates]) -> str:
    pending = [d for d in found if d.state != "approved"]
    if not pending:
        return ""
    where = "; ".join(f"{d.templates} from kiosk {d.device_id} ("
                      + ("held for approval" if d.state == "held" else f"used at branch {d.branch} only") + ")"
                      for d in pending)
    return (f"this person has face templates enrolled at a kiosk, not approved by HR: {where}. They are not sent "
            "to any other branch. Approve them (POST .../device-templates/approve) or drop them "
            "(POST .../device-templates/drop, or drop_device_templates=true in this request).")


def review_device_templates(db: HubDb, employee_id: str, action: str, device_id: str | None,
                            actor: str = "hr") -> EmployeeOut:
    """HR approves a person's kiosk-enrolled faces (they then go wherever the person works) or drops them
    (erased at the hub and, on their next sync, at every kiosk that has them, the enrolling one included)."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        if tx.row("SELECT 1 AS x FROM employees WHERE id = ?" + tx.for_update, [employee_id]) is None:
            raise NotFound(f"no employee {employee_id}")
        sources = _device_sources(tx, employee_id, device_id, pending_only=action == "approve")
        if not sources:
            raise NotFound(f"employee {employee_id} has no kiosk-enrolled templates"
                           + (f" from {device_id}" if device_id else "") + (" awaiting approval" if action ==
                                                                             "approve" else ""),
                           fix=f"See them with GET /v1/hr/employees/{employee_id}.")
        if action == "approve":
            where, params = tx.in_list("source", sources)
            count = tx.run(f"UPDATE templates SET scope_branch = NULL, held = 0, approved_by = ?, approved_utc = ? "
                           f"WHERE employee_id = ? AND approved_utc IS NULL AND {where}",
                           [actor, now, employee_id, *params])
        else:
            count = _drop_device_templates(tx, employee_id, sources, now)
        _bump(tx, employee_id)
        audit.record(tx, actor, f"templates.{action}", employee_id, sources=sources, templates=count)
        out = _employee_out(tx, employee_id)
    log.info("employee %s: %d kiosk template(s) %s", employee_id, count,
             "approved" if action == "approve" else "dropped")
    return out


def _drop_device_templates(tx: Tx, employee_id: str, sources: list[str], now: str) -> int:
    """Erase these kiosk sources' templates; each kiosk's enrolments of the person are marked dropped, so the
    roster tells that kiosk to erase its own copy too."""
    count = erase_templates(tx, employee_id, sources)
    ids = [src.removeprefix("device:") for src in sources]
    where, params = tx.in_list("device_id", ids)
    tx.run(f"UPDATE device_enrolments SET dropped_utc = ? WHERE employee_id = ? AND dropped_utc IS NULL AND {where}",
           [now, employee_id, *params])
    return count


def create_employee(db: HubDb, emp: EmployeeIn, made: Templates, actor: str = "hr",
                    path: str = "hr_api") -> tuple[EmployeeOut, bool]:
    """Create (or re-hire a terminated) employee; returns the result and whether it was re-hired. Templates
    need the person's consent (``emp.consent``, recorded here as taken by ``actor`` on ``path``, or on file)."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        row = tx.row("SELECT active, origin FROM employees WHERE id = ?" + tx.for_update, [emp.employee_id])
        adopted = row is not None and row["active"] and row["origin"] != "hr"
        if row is not None and row["active"] and not adopted:
            raise Conflict(f"employee {emp.employee_id} already exists",
                           fix=f"Change them with PATCH /v1/hr/employees/{emp.employee_id}.")
        if row is None:
            tx.run("INSERT INTO employees (id, name, active, created_utc, updated_utc) VALUES (?, ?, 1, ?, ?)",
                   [emp.employee_id, emp.name, now, now])
        elif adopted:
            # A kiosk enrolled this id first: HR's record takes over; the kiosk's faces stay scoped to its
            # branch (never sent elsewhere) until HR approves them, and the answer says so.
            tx.run("UPDATE employees SET name = ?, origin = 'hr', updated_utc = ? WHERE id = ?",
                   [emp.name, now, emp.employee_id])
        else:
            tx.run("UPDATE employees SET name = ?, active = 1, origin = 'hr', updated_utc = ?, terminated_utc = NULL, "
                   "terminate_reason = '' WHERE id = ?", [emp.name, now, emp.employee_id])
            erase_templates(tx, emp.employee_id)
        if emp.drop_device_templates and (sources := _device_sources(tx, emp.employee_id, pending_only=False)):
            _drop_device_templates(tx, emp.employee_id, sources, now)
        _set_cards(tx, emp.employee_id, emp.cards)
        _set_branches(tx, emp.employee_id, emp.branches)
        if emp.consent is not None:
            consents.record(tx, emp.employee_id, emp.consent, path, actor, now)
        consents.require(tx, emp.employee_id, len(made.ready))
        _add_templates(tx, emp.employee_id, made.ready, now)
        _bump(tx, emp.employee_id)
        action = "employee.adopt" if adopted else "employee.rehire" if row else "employee.create"
        audit.record(tx, actor, action, emp.employee_id, branches=emp.branches, cards=len(emp.cards),
                     templates=len(made.ready))
        out = _employee_out(tx, emp.employee_id)
    log.info("employee %s %s: %d template(s)", emp.employee_id, action.removeprefix("employee."), len(made.ready))
    return _with_report(out, made), row is not None and not adopted


def patch_employee(db: HubDb, employee_id: str, patch: EmployeePatch, made: Templates,
                   actor: str = "hr", path: str = "hr_api") -> EmployeeOut:
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        row = tx.row("SELECT active FROM employees WHERE id = ?" + tx.for_update, [employee_id])
        if row is None:
            raise NotFound(f"no employee {employee_id}", fix="Create them with POST /v1/hr/employees.")
        if not row["active"]:
            raise Conflict(f"employee {employee_id} was terminated",
                           fix="Re-hire with POST /v1/hr/employees (the full record).")
        # HR's change makes the person HR's: a kiosk's later faces of them wait for approval.
        tx.run("UPDATE employees SET origin = 'hr' WHERE id = ?", [employee_id])
        if patch.name is not None:
            tx.run("UPDATE employees SET name = ? WHERE id = ?", [patch.name, employee_id])
        if patch.cards is not None:
            _set_cards(tx, employee_id, patch.cards)
        if patch.branches is not None:
            _set_branches(tx, employee_id, patch.branches)
        if patch.replace_templates:
            erase_templates(tx, employee_id)
        elif patch.drop_device_templates and (sources := _device_sources(tx, employee_id, pending_only=False)):
            _drop_device_templates(tx, employee_id, sources, now)
        if patch.consent is not None:
            consents.record(tx, employee_id, patch.consent, path, actor, now)
        consents.require(tx, employee_id, len(made.ready))
        _add_templates(tx, employee_id, made.ready, now)
        tx.run("UPDATE employees SET updated_utc = ? WHERE id = ?", [now, employee_id])
        _bump(tx, employee_id)
        audit.record(tx, actor, "employee.change", employee_id, fields=sorted(patch.model_fields_set),
                     templates=len(made.ready))
        out = _employee_out(tx, employee_id)
    return _with_report(out, made)


def withdraw_consent(db: HubDb, employee_id: str, when: str | None, taken_by: str, actor: str = "hr") -> EmployeeOut:
    """The person withdraws their consent: every template of theirs is erased here now and, on their next sync,
    on every kiosk (the hub's own and the faces kiosks enrolled themselves); cards and punches stay, so they
    punch by card from now on. A later template needs a new consent."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        if tx.row("SELECT 1 AS x FROM employees WHERE id = ?" + tx.for_update, [employee_id]) is None:
            raise NotFound(f"no employee {employee_id}")
        consents.record_withdrawal(tx, employee_id, when or now, taken_by or actor, now)
        erased = erase_templates(tx, employee_id)
        tx.run("UPDATE device_enrolments SET dropped_utc = ? WHERE employee_id = ? AND dropped_utc IS NULL",
               [now, employee_id])
        tx.run("UPDATE employees SET updated_utc = ? WHERE id = ?", [now, employee_id])
        _bump(tx, employee_id)
        audit.record(tx, actor, "consent.withdraw", employee_id, templates=erased)
        out = _employee_out(tx, employee_id)
    log.info("employee %s withdrew consent: %d template(s) erased at the hub, kiosks erase on next sync",
             employee_id, erased)
    return out


def terminate_employee(db: HubDb, employee_id: str, reason: str, actor: str = "hr") -> EmployeeOut:
    """A leaver: cards and templates are deleted; every branch's kiosks erase them on their next sync."""
    check_text(reason, "reason")
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        row = tx.row("SELECT active FROM employees WHERE id = ?" + tx.for_update, [employee_id])
        if row is None:
            raise NotFound(f"no employee {employee_id}")
        tx.run("UPDATE employees SET active = 0, terminated_utc = ?, terminate_reason = ?, updated_utc = ? "
               "WHERE id = ?", [now, reason, now, employee_id])
        tx.run("DELETE FROM employee_cards WHERE employee_id = ?", [employee_id])
        erase_templates(tx, employee_id)
        _bump(tx, employee_id)
        audit.record(tx, actor, "employee.terminate", employee_id, reason=reason)
        out = _employee_out(tx, employee_id)
    log.info("employee %s terminated", employee_id)
    return out


# -- reads --------------------------------------------------------------------------


def _employee_out(tx: Tx, employee_id: str) -> EmployeeOut:
    emp = tx.row("SELECT id, name, active, terminated_utc, terminate_reason FROM employees WHERE id = ?",
                 [employee_id])
    if emp is None:
        raise NotFound(f"no employee {employee_id}")
    branches = [r["branch"] for r in tx.rows(
        "SELECT branch FROM employee_branches WHERE employee_id = ? AND active = 1 ORDER BY branch", [employee_id])]
    cards = [r["card_id"] for r in tx.rows(
        "SELECT card_id FROM employee_cards WHERE employee_id = ? ORDER BY card_id", [employee_id])]
    counts = {r["model_id"]: r["n"] for r in tx.rows(
        "SELECT model_id, count(*) AS n FROM templates WHERE employee_id = ? GROUP BY model_id", [employee_id])}
    kiosk_faces = device_templates(tx, employee_id)
    return EmployeeOut(employee_id=emp["id"], name=emp["name"], active=bool(emp["active"]), branches=branches,
                       cards=cards, templates=counts, terminated_utc=emp["terminated_utc"],
                       terminate_reason=emp["terminate_reason"] or "", device_templates=kiosk_faces,
                       notice=_device_notice(kiosk_faces))


def employee_record(tx: Tx, employee_id: str) -> EmployeeOut:
    """A person as HR sees them, inside a caller's transaction."""
    return _employee_out(tx, employee_id)


def _with_report(out: EmployeeOut, made: Templates) -> EmployeeOut:
    return out.model_copy(update={"photos_used": made.photos_used, "photos_rejected": made.problems,
                                  "models_missing": made.models_missing})


def get_employee(db: HubDb, employee_id: str) -> EmployeeOut:
    with db.transaction(write=False) as tx:
        return _employee_out(tx, employee_id)


STATUSES = ("active", "terminated", "all")


def list_employees(db: HubDb, branches: list[str] | None, status: str = "active", text: str | None = None,
                   offset: int = 0, limit: int = 50) -> EmployeePage:
    """Employees of ``branches`` (None: all), by status, whose id or name contains ``text``; by id."""
    where, params = [], []
    if status != "all":
        where.append("e.active = ?")
        params.append(1 if status == "active" else 0)
    if text:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        where.append("(lower(e.id) LIKE ? ESCAPE '\\' OR lower(e.name) LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    with db.transaction(write=False) as tx:
        if branches is not None:
            cond, values = tx.in_list("b.branch", branches)
            where.append(f"EXISTS (SELECT 1 FROM employee_branches b WHERE b.employee_id = e.id AND {cond})")
            params += values
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = int(tx.row(f"SELECT count(*) AS n FROM employees e{clause}", params)["n"])
        ids = [r["id"] for r in tx.rows(f"SELECT e.id FROM employees e{clause} ORDER BY e.id LIMIT ? OFFSET ?",
                                        [*params, limit, offset])]
        found = [_employee_out(tx, i) for i in ids]
    more = offset + len(ids) < total
    return EmployeePage(employees=found, total=total, next_offset=offset + len(ids) if more else None)


def template_presence(db: HubDb, employee_id: str) -> list[dict[str, Any]]:
    """For each active kiosk of the person's branches: whether it has their templates (per its model).

    synced: the kiosk's roster cursor (from its heartbeat) has passed the person's last change;
    pending: not yet; no_templates: the hub has none for that kiosk's model (card only there);
    no_model: the kiosk runs no face model.
    """
    with db.transaction(write=False) as tx:
        links = {r["branch"]: r["change_seq"] for r in tx.rows(
            "SELECT branch, change_seq FROM employee_branches WHERE employee_id = ? AND active = 1", [employee_id])}
        counts = {r["model_id"]: r["n"] for r in tx.rows(
            "SELECT model_id, count(*) AS n FROM templates WHERE employee_id = ? GROUP BY model_id", [employee_id])}
        where, params = tx.in_list("branch", list(links))
        kiosks = tx.rows(f"SELECT id, name, branch, model_id, heartbeat FROM devices WHERE status = 'active' "
                         f"AND {where} ORDER BY branch, id", params)
    out = []
    for dev in kiosks:
        cursor = json.loads(dev["heartbeat"] or "{}").get("roster_cursor", 0)
        if not dev["model_id"]:
            state = "no_model"
        elif not counts.get(dev["model_id"]):
            state = "no_templates"
        else:
            state = "synced" if cursor >= links[dev["branch"]] else "pending"
        out.append({"device_id": dev["id"], "name": dev["name"], "branch": dev["branch"], "model_id": dev["model_id"],
                    "templates": counts.get(dev["model_id"], 0), "state": state})
    return out


def device_source(device_id: str) -> str:
    """Template source of faces enrolled at a kiosk (never sent back to that kiosk)."""
    return f"device:{device_id}"


def device_enrolment_record(db: HubDb, device: Device, raw: Any) -> EnrolmentResult:
    """One enrolment of a kiosk's batch, checked on its own: a malformed one is rejected with its reason."""
    try:
        enr = DeviceEnrolment.model_validate(raw)
    except ValidationError as exc:
        ident = raw.get("enrolment_id") if isinstance(raw, dict) else None
        ident = ident if isinstance(ident, int) and not isinstance(ident, bool) and 0 <= ident <= DB_INT_MAX else 0
        return EnrolmentResult(enrolment_id=ident, status="rejected", reason=validation_reason(exc))
    return device_enrolment(db, device, enr)


def device_enrolment(db: HubDb, device: Device, enr: DeviceEnrolment) -> EnrolmentResult:
    """Store a kiosk's enrolment: the person joins the kiosk's branch (created if new), cards are
    added, templates stored with source 'device:ID'; the branch's other kiosks get them by roster."""
    def refuse(reason: str) -> EnrolmentResult:
        return EnrolmentResult(enrolment_id=enr.enrolment_id, status="rejected", reason=reason)

    if any(t.model_id != device.model_id for t in enr.templates):
        return refuse("templates are not of the model this device reported; send a heartbeat first")
    try:
        vectors = [t.vector() for t in enr.templates]
    except ValueError as exc:
        return refuse(str(exc))
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        if tx.row("SELECT 1 AS x FROM device_enrolments WHERE device_id = ? AND enrolment_id = ?",
                  [device.id, enr.enrolment_id]) is not None:
            return EnrolmentResult(enrolment_id=enr.enrolment_id, status="duplicate")
        row = tx.row("SELECT active, origin FROM employees WHERE id = ?" + tx.for_update, [enr.employee_id])
        if row is not None and not row["active"]:
            return refuse(f"employee {enr.employee_id} was terminated at the hub")
        branches = {r["branch"] for r in tx.rows("SELECT branch FROM employee_branches WHERE employee_id = ? "
                                                 "AND active = 1", [enr.employee_id])}
        if row is not None and device.branch not in branches:
            return refuse(f"employee {enr.employee_id} belongs to {', '.join(sorted(branches)) or 'no branch'} "
                          f"at the hub, not {device.branch}; HR must assign them to this branch first")
        if enr.consent is None and not consents.current(tx, enr.employee_id):
            return refuse(f"no consent to face recognition for {enr.employee_id} came with these faces or is on "
                          "file; the kiosk must record the person's consent (no consent, no template)")
        if row is None:
            tx.run("INSERT INTO employees (id, name, active, created_utc, updated_utc, origin) "
                   "VALUES (?, ?, 1, ?, ?, ?)", [enr.employee_id, enr.name, now, now, device_source(device.id)])
            _set_branches(tx, enr.employee_id, [device.branch])
        if enr.consent is not None:
            consents.record(tx, enr.employee_id, enr.consent, enr.consent_path, device_source(device.id), now,
                            device.id)
        # A kiosk's faces are its branch's only; for someone HR manages, none goes anywhere until HR approves.
        held = row is not None and row["origin"] == "hr"
        existing = [r["card_id"] for r in tx.rows("SELECT card_id FROM employee_cards WHERE employee_id = ?",
                                                  [enr.employee_id])]
        try:
            _set_cards(tx, enr.employee_id, [*existing, *enr.cards])
        except Conflict as exc:
            return refuse(exc.what)
        _add_templates(tx, enr.employee_id, [HubTemplate(device.model_id, v, t.quality, device_source(device.id),
                                                         device.branch, held)
                                             for v, t in zip(vectors, enr.templates, strict=True)], now)
        tx.run("INSERT INTO device_enrolments (device_id, enrolment_id, employee_id, templates, received_utc) "
               "VALUES (?, ?, ?, ?, ?)", [device.id, enr.enrolment_id, enr.employee_id, len(vectors), now])
        tx.run("UPDATE employees SET updated_utc = ? WHERE id = ?", [now, enr.employee_id])
        _bump(tx, enr.employee_id)
        _resolve_roster_flags(tx, device.branch, enr.employee_id, now)
    log.info("device %s enrolled %s: %d template(s)%s", device.id, enr.employee_id, len(vectors),
             ", held for HR's approval" if held else "")
    return EnrolmentResult(enrolment_id=enr.enrolment_id, status="stored",
                           reason="held: HR must approve these faces before other kiosks use them" if held else "")


def _resolve_roster_flags(tx: Tx, branch: str, employee_id: str, now: str) -> None:
    """A kiosk enrolment explains punches its branch sent for that id before the enrolment arrived (the kiosk
    punched first, or sent its enrolment late): their not_on_roster / unknown_employee flags are taken off and
    the branch's open issues about the person resolved (kept, with resolved_utc, for the record)."""
    where, params = tx.in_list("kind", list(ROSTER_FLAGS))
    tx.run(f"UPDATE device_issues SET resolved_utc = ? WHERE employee_id = ? AND resolved_utc IS NULL AND {where} "
           "AND device_id IN (SELECT id FROM devices WHERE branch = ?)", [now, employee_id, *params, branch])
    for row in tx.rows("SELECT hub_seq, hub_flags FROM punches WHERE employee_id = ? AND branch = ? "
                       "AND hub_flags <> ''", [employee_id, branch]):
        kept = ",".join(f for f in row["hub_flags"].split(",") if f not in ROSTER_FLAGS)
        if kept != row["hub_flags"]:
            tx.run("UPDATE punches SET hub_flags = ? WHERE hub_seq = ?", [kept, row["hub_seq"]])


def roster_page(db: HubDb, device: Device, cursor: int, limit: int) -> RosterPage:
    """The device's branch's people changed since ``cursor``; a device never sees another branch."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT b.employee_id, b.active AS member, b.change_seq, e.name, e.active "
                       "FROM employee_branches b JOIN employees e ON e.id = b.employee_id "
                       "WHERE b.branch = ? AND b.change_seq > ? ORDER BY b.change_seq LIMIT ?",
                       [device.branch, cursor, limit])
        live = [r["employee_id"] for r in rows if r["member"] and r["active"]]
        cards: dict[str, list[str]] = {e: [] for e in live}
        templates: dict[str, list[RosterTemplate]] = {e: [] for e in live}
        dropped: set[str] = set()
        if live:
            where, params = tx.in_list("employee_id", live)
            for r in tx.rows(f"SELECT card_id, employee_id FROM employee_cards WHERE {where} ORDER BY card_id", params):
                cards[r["employee_id"]].append(r["card_id"])
            if device.model_id:
                # A kiosk already has the faces it enrolled itself: they are not sent back to it.
                # A kiosk's faces not approved by HR go to its own branch only, and never when held.
                for r in tx.rows(f"SELECT employee_id, model_id, dim, vector, quality FROM templates "
                                 f"WHERE model_id = ? AND source != ? AND held = 0 AND (scope_branch IS NULL "
                                 f"OR scope_branch = ?) AND {where} ORDER BY id",
                                 [device.model_id, device_source(device.id), device.branch, *params]):
                    templates[r["employee_id"]].append(_roster_template(r))
            dropped = _dropped_here(tx, device.id, live)
    people = [RosterEmployee(employee_id=r["employee_id"], name=r["name"], cards=cards[r["employee_id"]],
                             templates=templates[r["employee_id"]], erase_own_templates=r["employee_id"] in dropped)
              for r in rows if r["employee_id"] in cards]
    # A device starting from 0 has nobody to erase; later pages carry every leaver.
    gone = [r["employee_id"] for r in rows if r["employee_id"] not in cards] if cursor > 0 else []
    return RosterPage(cursor=rows[-1]["change_seq"] if rows else cursor, more=len(rows) == limit,
                      model_id=device.model_id, employees=people, deletions=gone)


def _dropped_here(tx: Tx, device_id: str, employee_ids: list[str]) -> set[str]:
    """People whose latest enrolment at this kiosk HR dropped: the kiosk erases the faces it enrolled itself."""
    if not employee_ids:
        return set()
    where, params = tx.in_list("employee_id", employee_ids)
    rows = tx.rows(f"SELECT employee_id, dropped_utc FROM device_enrolments WHERE device_id = ? AND {where} "
                   f"ORDER BY enrolment_id", [device_id, *params])
    latest = {r["employee_id"]: r["dropped_utc"] for r in rows}
    return {employee_id for employee_id, dropped in latest.items() if dropped}


def _roster_template(row: dict[str, Any]) -> RosterTemplate:
    vec = np.frombuffer(bytes(row["vector"]), dtype="<f4")
    return RosterTemplate(model_id=row["model_id"], dim=row["dim"], vector_b64=encode_vector(vec),
                          quality=row["quality"])
