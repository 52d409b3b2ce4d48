"""HR's actions, each checked against the caller's role and branches: the HR API and the console both call
these, so every console action has its API twin and one set of rules."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from kiosk.base.errors import InvalidInput, NotFound
from sync.errors import Forbidden
from sync.hub import attendance, audit, branches, devices, export, people, report
from sync.hub.accounts import Principal
from sync.hub.config import HubConfig
from sync.hub.db.base import HubDb
from sync.hub.faces import TemplateMaker
from sync.hub.field import phones
from sync.hub.field.geofence import Site
from sync.hub.outbound import queue, webhooks
from sync.hub.outbound.events import EVENT_TYPES
from sync.protocol import (
    BranchIn,
    CodeIn,
    CorrectionIn,
    DeviceStatus,
    EmployeeIn,
    EmployeeOut,
    EmployeePage,
    EmployeePatch,
    OutboxActionIn,
    PersonReport,
    PhotoCheckIn,
    PhotoCheckOut,
    WebhookIn,
    WithdrawIn,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubContext:
    """What every action needs: the database, the configuration and the template maker."""

    db: HubDb
    config: HubConfig
    maker: TemplateMaker

    @property
    def tz(self) -> str:
        return self.config.console.timezone


# -- employees ------------------------------------------------------------------------


def _templates(hub: HubContext, photos: list[str], given: list[Any]) -> people.Templates:
    faces = hub.config.faces
    if photos and not faces.enabled:
        raise InvalidInput("this hub does not make templates from photos (faces.enabled = false)",
                           fix="Send ready templates instead of photos.")
    known: dict[str, int | None] = dict(devices.model_dims_in_use(hub.db))
    known.update(hub.maker.model_ids())
    return people.prepare_templates(photos, given, hub.maker, known, faces.max_photo_bytes)


def list_employees(hub: HubContext, p: Principal, branch: str | None, status: str, text: str | None,
                   offset: int, limit: int) -> EmployeePage:
    p.require("employees.read")
    if status not in people.STATUSES:
        raise InvalidInput(f"status={status!r} is not known", fix=f"Use one of: {', '.join(people.STATUSES)}.")
    return people.list_employees(hub.db, p.scope(branch), status, (text or "").strip() or None, offset, limit)


def get_employee(hub: HubContext, p: Principal, employee_id: str) -> EmployeeOut:
    p.require("employees.read")
    out = people.get_employee(hub.db, employee_id)
    if p.branches is not None and not any(p.sees(b) for b in out.branches):
        raise NotFound(f"no employee {employee_id} in your branches")
    return out


def employee_kiosks(hub: HubContext, p: Principal, employee_id: str) -> list[dict[str, Any]]:
    get_employee(hub, p, employee_id)
    return [k for k in people.template_presence(hub.db, employee_id) if p.sees(k["branch"])]


def create_employee(hub: HubContext, p: Principal, emp: EmployeeIn, path: str = "hr_api") -> EmployeeOut:
    p.require("employees.write")
    p.require_branches(emp.branches)
    out, _rehired = people.create_employee(hub.db, emp, _templates(hub, emp.photos, emp.templates), p.name, path)
    return out


def check_photos(hub: HubContext, p: Principal, check: PhotoCheckIn) -> PhotoCheckOut:
    """Each photo's verdict by the checks a save runs (the same templates step), before anything is saved."""
    p.require("employees.write")
    made = _templates(hub, check.photos, [])
    return PhotoCheckOut(photos=people.photo_verdicts(made, len(check.photos), len(hub.maker.model_ids())))


def patch_employee(hub: HubContext, p: Principal, employee_id: str, patch: EmployeePatch,
                   path: str = "hr_api") -> EmployeeOut:
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    p.require_branches(patch.branches or [])
    return people.patch_employee(hub.db, employee_id, patch, _templates(hub, patch.photos, patch.templates), p.name,
                                 path)


def withdraw_consent(hub: HubContext, p: Principal, employee_id: str, body: WithdrawIn) -> EmployeeOut:
    """The person withdrew their consent to face recognition: their templates are erased everywhere."""
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    return people.withdraw_consent(hub.db, employee_id, body.withdrawn_utc, body.taken_by or p.name, p.name)


def person_report(hub: HubContext, p: Principal, employee_id: str) -> PersonReport:
    """What the hub holds about the person (an access request)."""
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    found = report.person_report(hub.db, employee_id)
    with hub.db.transaction() as tx:
        audit.record(tx, p.name, "employee.report", employee_id)
    return found


def review_device_templates(hub: HubContext, p: Principal, employee_id: str, action: str,
                            device_id: str | None) -> EmployeeOut:
    """``approve`` (kiosk-enrolled faces go wherever the person works) or ``drop`` (erased everywhere)."""
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    return people.review_device_templates(hub.db, employee_id, action, device_id, p.name)


def terminate_employee(hub: HubContext, p: Principal, employee_id: str, reason: str) -> EmployeeOut:
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    return people.terminate_employee(hub.db, employee_id, reason, p.name)


# -- punches, exports, attendance --------------------------------------------------------------


def punch_filter(p: Principal, permission: str, **given: Any) -> export.PunchFilter:
    """A PunchFilter limited to what ``p`` may see; ``from``/``to`` text is parsed here."""
    p.require(permission)
    branch = given.pop("branch", None)
    start = export.parse_bound(given.pop("start", None), "from")
    end = export.parse_bound(given.pop("end", None), "to")
    given = {k: v for k, v in given.items() if v not in (None, "")}
    return export.PunchFilter(branches=p.scope(branch), start=start, end=end, **given)


def punches(hub: HubContext, flt: export.PunchFilter, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
    size = min(limit, hub.config.server.export_page_size)
    return export.query(hub.db, flt, size, hub.tz)


def payroll(hub: HubContext, flt: export.PunchFilter) -> list[dict[str, Any]]:
    return export.payroll(hub.db, flt, hub.config.console.export_max_rows, hub.tz)


def add_correction(hub: HubContext, p: Principal, body: CorrectionIn) -> dict[str, Any]:
    return attendance.add_correction(hub.db, p, body, hub.tz, hub.config.console.manual_confirm_window_s)


def visible_branches(hub: HubContext, p: Principal) -> list[str]:
    codes = [b["code"] for b in branches.list_branches(hub.db, hub.tz)]
    return [c for c in codes if p.sees(c)] if p.branches is not None else codes


def day_sheet(hub: HubContext, p: Principal, branch: str, day: date | None) -> dict[str, Any]:
    p.require("punches.read")
    p.scope(branch)
    starts = hub.config.console.day_starts_at_of(branch)
    day = day or attendance.local_today(hub.db, branch, hub.tz, starts)
    rows = attendance.day_sheet(hub.db, p, branch, day, hub.tz, starts)
    return {"branch": branch, "date": day.isoformat(), "day_starts_at": starts, "people": [r.to_dict() for r in rows]}


def today(hub: HubContext, p: Principal, branch: str | None = None) -> list[dict[str, Any]]:
    codes = p.scope(branch) or visible_branches(hub, p)
    return attendance.today(hub.db, p, codes, hub.tz, hub.config.console.offline_after_s,
                            hub.config.console.day_starts_at_of)


# -- devices and branches ----------------------------------------------------------------------


def list_devices(hub: HubContext, p: Principal, branch: str | None) -> list[DeviceStatus]:
    return devices.list_devices(hub.db, branches=p.scope(branch), offline_after_s=hub.config.console.offline_after_s)


def device_status(hub: HubContext, p: Principal, device_id: str) -> DeviceStatus:
    found = devices.device_status(hub.db, device_id, offline_after_s=hub.config.console.offline_after_s)
    if not p.sees(found.branch):
        raise NotFound(f"no device {device_id} in your branches")
    return found


def revoke_device(hub: HubContext, p: Principal, device_id: str) -> DeviceStatus:
    p.require("devices.manage")
    device_status(hub, p, device_id)
    devices.revoke_device(hub.db, device_id)
    with hub.db.transaction() as tx:
        audit.record(tx, p.name, "device.revoke", device_id)
    return device_status(hub, p, device_id)


def create_code(hub: HubContext, p: Principal, body: CodeIn) -> dict[str, str]:
    p.require("devices.manage")
    p.require_branches([body.branch])
    code = devices.create_code(hub.db, body.branch, hub.config.server.registration_code_ttl_h, body.label)
    with hub.db.transaction() as tx:
        audit.record(tx, p.name, "device.code", body.branch, label=body.label)
    return code


def list_branches(hub: HubContext, p: Principal) -> list[dict[str, Any]]:
    return [b for b in branches.list_branches(hub.db, hub.tz) if p.sees(b["code"])]


def set_branch(hub: HubContext, p: Principal, code: str, body: BranchIn) -> dict[str, str]:
    p.require("branches.manage")
    return branches.set_branch(hub.db, code, body.timezone, body.name, p.name)


def audit_trail(hub: HubContext, p: Principal, target: str | None, limit: int = 100) -> list[dict[str, Any]]:
    if p.branches is not None or not p.can("employees.write"):
        raise Forbidden("only an HR admin may read the audit trail")
    return audit.recent(hub.db, target, limit)


# -- out to HR systems: the delivery queue and webhooks (the same queue functions `kiosk hub outbox|webhook` call)


def _outbound(p: Principal) -> None:
    p.require("outbound.manage")
    if p.branches is not None:
        raise Forbidden("the outbound queue holds every branch's events", fix="Ask an HR admin or ops without a "
                        "branch limit.")


def outbox(hub: HubContext, p: Principal, status: str | None, subscription: str | None,
           limit: int = 100) -> list[dict[str, Any]]:
    """Records of the outbound queue, oldest first, with attempts and last error."""
    _outbound(p)
    if status is not None and status not in queue.STATUSES:
        raise InvalidInput(f"status={status!r} is not known", fix=f"Use one of: {', '.join(queue.STATUSES)}.")
    return queue.list_deliveries(hub.db, status, subscription, limit)


def outbox_action(hub: HubContext, p: Principal, action: str, body: OutboxActionIn) -> int:
    """``retry`` (parked or skipped records sent again, now) or ``skip``; returns how many records changed."""
    _outbound(p)
    change = {"retry": queue.retry, "skip": queue.skip}[action]
    changed = change(hub.db, body.ids, body.all_parked, body.subscription)
    with hub.db.transaction() as tx:
        audit.record(tx, p.name, f"outbox.{action}", body.subscription or "", ids=body.ids[:20],
                     all_parked=body.all_parked, changed=changed)
    return changed


def webhook_list(hub: HubContext, p: Principal) -> list[dict[str, Any]]:
    """Subscriptions (webhooks and connectors) with their queue counts; never their secrets."""
    _outbound(p)
    return queue.list_subscriptions(hub.db)


def webhook_add(hub: HubContext, p: Principal, body: WebhookIn) -> dict[str, Any]:
    """A new webhook subscription; its signing secret is in the answer, once."""
    _outbound(p)
    sub = queue.add_subscription(hub.db, "webhook", body.url.strip(), body.event_types or list(EVENT_TYPES),
                                 body.description.strip())
    with hub.db.transaction() as tx:
        audit.record(tx, p.name, "webhook.add", sub.id, url=sub.url, event_types=sub.event_types)
    return {"id": sub.id, "url": sub.url, "event_types": sub.event_types, "secret": sub.secrets[0]}


def webhook_remove(hub: HubContext, p: Principal, sub_id: str) -> int:
    """Stop a webhook; returns how many undelivered records were skipped."""
    _outbound(p)
    found = queue.subscriptions(hub.db).get(sub_id)
    if found is None or found.kind != "webhook":
        raise NotFound(f"no webhook {sub_id}", fix="Connectors are turned off in hub.toml; list webhooks with "
                       "GET /v1/hr/webhooks.")
    skipped = queue.remove_subscription(hub.db, sub_id)
    with hub.db.transaction() as tx:
        audit.record(tx, p.name, "webhook.remove", sub_id, skipped=skipped)
    return skipped


def webhook_test(hub: HubContext, p: Principal, sub_id: str) -> dict[str, Any]:
    """Send a signed test event now; whether the receiver accepted it, its error and the time taken."""
    _outbound(p)
    sub, outcome, took_s = webhooks.test_subscription(hub.db, sub_id, hub.config.outbound.timeout_s)
    return {"id": sub.id, "url": sub.url, "accepted": outcome.kind == "delivered", "error": outcome.error,
            "took_ms": round(took_s * 1000)}


# -- field staff's phones (the same functions `kiosk hub field ...` calls) ---------------------------------


def field_pair(hub: HubContext, p: Principal, employee_id: str, label: str, origin: str) -> dict[str, str]:
    """A one-time pairing link for the phone of an employee of the caller's branches."""
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    made = phones.create_pairing(hub.db, employee_id, hub.config.field.pairing_ttl_min, p.name, label)
    return {**made, "link": origin.rstrip("/") + made["path"]}


def field_phones(hub: HubContext, p: Principal, employee_id: str | None = None) -> list[dict[str, Any]]:
    """Paired phones (revoked ones too) of employees in the caller's branches."""
    p.require("employees.read")
    if employee_id:
        get_employee(hub, p, employee_id)
    return [phone for phone in phones.list_phones(hub.db, employee_id) if p.sees(phone["branch"])]


def field_revoke(hub: HubContext, p: Principal, device_id: str) -> None:
    p.require("employees.write")
    if not any(phone["device_id"] == device_id and phone["revoked_utc"] is None for phone in field_phones(hub, p)):
        raise NotFound(f"no paired field phone {device_id} in your branches",
                       fix="List them with `kiosk hub field list` or on the console's Phones page.")
    phones.revoke(hub.db, device_id, p.name)


def field_sites(hub: HubContext, p: Principal, employee_id: str) -> dict[str, Any]:
    """An employee's geofence policy and sites for field punches."""
    p.require("employees.read")
    get_employee(hub, p, employee_id)
    return phones.employee_sites(hub.db, employee_id, hub.config.field.default_policy)


def set_field_sites(hub: HubContext, p: Principal, employee_id: str, policy: str, sites: list[Site]) -> None:
    p.require("employees.write")
    get_employee(hub, p, employee_id)
    phones.set_sites(hub.db, employee_id, policy, sites, p.name)
