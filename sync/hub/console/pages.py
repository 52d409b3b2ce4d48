"""The console's pages (GET): Today, Devices, Punches with the live feed, Employees, Attendance, Export, Outbox,
Phones (field staff's paired phones and their sites)."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from kiosk.base.errors import KioskError
from kiosk.base.text import DB_INT_MAX
from sync.hub import accounts, audit, feed, hr
from sync.hub.console.render import LANG_COOKIE, LANGUAGES, environment, language, page, translator
from sync.hub.console.session import PRE_CSRF_COOKIE, current, hub_of, new_pre_csrf, problem
from sync.hub.field.geofence import POLICIES, site_text
from sync.hub.field.signals import SIGNALS
from sync.hub.outbound.events import EVENT_TYPES
from sync.protocol import DIRECTIONS, KINDS, METHODS

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
FLAGS = ("outside_geofence", "geofence_uncertain", "no_gps_fix", "clock_behind_floor", *SIGNALS)
PUNCH_LIST_SIZE = 200
DONE_KEYS = {"created", "changed", "terminated", "corrected", "revoked", "signed_out", "retried", "skipped",
             "removed", "approved", "dropped", "phone_revoked", "sites_saved"}
OUTBOX_SHOWN = 200  # pending and parked records shown per subscription


def _done(request: Request) -> str | None:
    done = request.query_params.get("done")
    return f"done.{done}" if done in DONE_KEYS else None


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> Response:
    token = new_pre_csrf()
    response = page(request, "signin.html", None, pre_csrf=token, next=request.query_params.get("next", "/"),
                    error=None, done=_done(request))
    response.set_cookie(PRE_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/signin")
    return response


@router.get("/lang")
def switch_language(request: Request, to: str = "en", next: str = "/") -> Response:  # noqa: A002
    """Remember the chosen language and go back (only to a page of this console)."""
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, samesite="strict", max_age=365 * 86400, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def today_page(request: Request) -> Response:
    who = current(request)
    return page(request, "today.html", who, branches=hr.today(hub_of(request), who))


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request, branch: str | None = None) -> Response:
    who = current(request)
    hub = hub_of(request)
    return page(request, "devices.html", who, devices=hr.list_devices(hub, who, branch or None),
                branches=hr.visible_branches(hub, who), branch=branch or "", code=None, error=None,
                done=_done(request))


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(request: Request, device_id: str) -> Response:
    who = current(request)
    hub = hub_of(request)
    return page(request, "device.html", who, device=hr.device_status(hub, who, device_id), error=None,
                done=_done(request))


def _punch_filters(request: Request) -> dict[str, str]:
    names = ("branch", "employee_id", "from", "to", "method", "direction", "kind", "flag")
    return {name: request.query_params.get(name, "").strip() for name in names}


@router.get("/punches", response_class=HTMLResponse)
def punches_page(request: Request) -> Response:
    who = current(request)
    hub = hub_of(request)
    given = _punch_filters(request)
    rows: list[dict[str, Any]] = []
    error = None
    try:
        flt = hr.punch_filter(who, "punches.read", branch=given["branch"], start=given["from"], end=given["to"],
                              employee_id=given["employee_id"], method=given["method"],
                              direction=given["direction"], kind=given["kind"], flag=given["flag"],
                              newest_first=True)
        rows, _, _ = hr.punches(hub, flt, PUNCH_LIST_SIZE)
    except KioskError as exc:
        error = problem(exc)
    return page(request, "punches.html", who, rows=rows, given=given, branches=hr.visible_branches(hub, who),
                methods=METHODS, directions=DIRECTIONS, kinds=KINDS, flags=FLAGS, limit=PUNCH_LIST_SIZE,
                error=error, live_branch=given["branch"])


@router.get("/live")
def live_feed(request: Request, branch: str | None = None) -> StreamingResponse:
    """The Punches page's live feed: each new punch as a ready table row in the page's language."""
    who = current(request)
    hub = hub_of(request)
    flt = hr.punch_filter(who, "punches.read", branch=branch or None)
    flt.cursor = feed.start_cursor(hub, request.headers.get("last-event-id"), None)
    row_template = environment().get_template("punch_row.html")
    t = translator(language(request))

    def render(row: dict[str, Any]) -> str:
        return row_template.render(p=row, t=t).replace("\n", " ")

    return StreamingResponse(feed.punch_events(hub, flt, render, request.app.state.stop),
                             media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/employees", response_class=HTMLResponse)
def employees_page(request: Request, q: str = "", branch: str = "", status: str = "active",
                   offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0) -> Response:
    who = current(request)
    hub = hub_of(request)
    found = hr.list_employees(hub, who, branch or None, status, q, max(0, offset), 50)
    return page(request, "employees.html", who, found=found, q=q, branch=branch, status=status, offset=offset,
                branches=hr.visible_branches(hub, who))


@router.get("/employees/new", response_class=HTMLResponse)
def new_hire_page(request: Request) -> Response:
    who = current(request)
    who.require("employees.write")
    return page(request, "new_hire.html", who, branches=hr.visible_branches(hub_of(request), who), given={},
                error=None)


def employee_context(request: Request, who: accounts.Principal, employee_id: str) -> dict[str, Any]:
    hub = hub_of(request)
    emp = hr.get_employee(hub, who, employee_id)
    flt = hr.punch_filter(who, "punches.read", employee_id=employee_id, newest_first=True)
    recent, _, _ = hr.punches(hub, flt, 20)
    trail = audit.recent(hub.db, employee_id, 20) if who.can("employees.write") and who.branches is None else []
    return {"emp": emp, "kiosks": hr.employee_kiosks(hub, who, employee_id), "recent": recent, "trail": trail,
            "branches": hr.visible_branches(hub, who), "verdicts": None, "error": None}


@router.get("/employees/{employee_id}", response_class=HTMLResponse)
def employee_page(request: Request, employee_id: str) -> Response:
    who = current(request)
    return page(request, "employee.html", who, done=_done(request), **employee_context(request, who, employee_id))


@router.get("/attendance", response_class=HTMLResponse)
def attendance_page(request: Request, branch: str = "", day: str = "") -> Response:
    who = current(request)
    hub = hub_of(request)
    codes = hr.visible_branches(hub, who)
    branch = branch or (codes[0] if codes else "")
    sheet, error = None, None
    if branch:
        try:
            sheet = hr.day_sheet(hub, who, branch, date.fromisoformat(day) if day else None)
        except ValueError:
            error = {"key": "error.invalid", "detail": day}
        except KioskError as exc:
            error = problem(exc)
    return page(request, "attendance.html", who, sheet=sheet, branch=branch, branches=codes, error=error,
                done=_done(request))


@router.get("/attendance/correct", response_class=HTMLResponse)
def correction_page(request: Request) -> Response:
    who = current(request)
    who.require("corrections.write")
    given = {k: request.query_params.get(k, "") for k in ("employee_id", "branch", "local_time", "direction",
                                                          "reason")}
    return page(request, "correct.html", who, given=given, branches=hr.visible_branches(hub_of(request), who),
                error=None, ask_confirm=False)


@router.get("/export", response_class=HTMLResponse)
def export_page(request: Request) -> Response:
    who = current(request)
    who.require("export")
    return page(request, "export.html", who, branches=hr.visible_branches(hub_of(request), who))


def outbox_context(request: Request, who: accounts.Principal) -> dict[str, Any]:
    """Every subscription with its queue counts, and its pending and parked records (oldest first)."""
    hub = hub_of(request)
    subs = hr.webhook_list(hub, who)
    for sub in subs:
        sub["records"] = [r for status in ("parked", "pending")
                          for r in hr.outbox(hub, who, status, sub["id"], OUTBOX_SHOWN)]
    return {"subs": subs, "event_types": EVENT_TYPES, "added": None, "tested": None, "error": None}


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request) -> Response:
    who = current(request)
    return page(request, "outbox.html", who, done=_done(request), **outbox_context(request, who))


def phones_context(request: Request, who: accounts.Principal, employee: str = "") -> dict[str, Any]:
    """Paired phones in the caller's branches and, for ``employee``, their geofence policy and sites."""
    hub = hub_of(request)
    sites = None
    if employee:
        found = hr.field_sites(hub, who, employee)
        sites = {**found, "lines": [site_text(s) for s in found["sites"]]}
    return {"phones": hr.field_phones(hub, who), "employee": employee, "sites": sites, "policies": POLICIES,
            "paired": None, "error": None}


@router.get("/phones", response_class=HTMLResponse)
def phones_page(request: Request, employee: str = "") -> Response:
    who = current(request)
    error = None
    try:
        context = phones_context(request, who, employee.strip())
    except KioskError as exc:
        context, error = phones_context(request, who), problem(exc)
    return page(request, "phones.html", who, done=_done(request), **{**context, "error": error})
