"""The HR API (/v1/hr/...): bearer tokens or a console session (with its CSRF header for changes),
strict query parameters, and one route per console action."""

# No `from __future__ import annotations` here: FastAPI reads these annotations at run time.
import json
import logging
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kiosk.base.errors import InvalidInput
from kiosk.base.text import DB_INT_MAX
from sync.errors import Forbidden, Unauthorized
from sync.hub import accounts, feed, hr
from sync.hub.accounts import Principal
from sync.hub.export import EXPORT_COLUMNS, PAYROLL_COLUMNS, as_csv, as_json_lines, as_xlsx
from sync.hub.hr import HubContext
from sync.protocol import (
    API_PREFIX,
    DIRECTIONS,
    KINDS,
    METHODS,
    MORE_HEADER,
    NEXT_CURSOR_HEADER,
    BranchIn,
    CodeIn,
    CorrectionIn,
    DeviceStatus,
    DeviceTemplatesIn,
    EmployeeIn,
    EmployeeOut,
    EmployeePage,
    EmployeePatch,
    OutboxActionIn,
    PersonReport,
    PhotoCheckIn,
    PhotoCheckOut,
    SignInIn,
    TerminateIn,
    WebhookIn,
    WithdrawIn,
)

log = logging.getLogger(__name__)

SESSION_COOKIE = "kiosk_hub_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Method = Literal[METHODS]  # type: ignore[valid-type]
Direction = Literal[DIRECTIONS]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]


def context(request: Request) -> HubContext:
    return request.app.state.hub


def principal_of(request: Request) -> Principal:
    """The caller: a bearer token, else the console session cookie (changes must echo its CSRF token)."""
    hub = context(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return accounts.token_principal(hub.db, token.strip())
    found = accounts.session_principal(hub.db, request.cookies.get(SESSION_COOKIE, ""),
                                       hub.config.console.session_idle_min)
    if found is None:
        raise Unauthorized("this call needs an Authorization: Bearer TOKEN header or a console session",
                           fix="Send an HR API token, or sign in (POST /v1/hr/session).")
    if request.method not in SAFE_METHODS and not accounts.csrf_ok(found, request.headers.get(CSRF_HEADER)):
        raise Forbidden("missing or wrong CSRF token", fix=f"Send the session's csrf_token in the {CSRF_HEADER} "
                        "header.")
    return found


def strict_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (as listed in the OpenAPI document)."""
    route = request.scope.get("route")
    allowed = _declared_query(request.app).get((request.method, getattr(route, "path_format", "")), set())
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        raise UnknownParameter(unknown, sorted(allowed))


class UnknownParameter(InvalidInput):
    """A query parameter no route declares: a typo or a filter that does not exist (400)."""

    def __init__(self, names: list[str], allowed: list[str]) -> None:
        super().__init__(f"unknown query parameter(s): {', '.join(names)}",
                         fix=f"Known here: {', '.join(allowed) or 'none'} (see /v1/openapi.json).")


def _declared_query(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    cached = getattr(app.state, "declared_query", None)
    if cached is None:
        cached = {}
        for path, methods in app.openapi()["paths"].items():
            for method, op in methods.items():
                cached[(method.upper(), path)] = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        app.state.declared_query = cached
    return cached


Hub = Annotated[HubContext, Depends(context)]
Who = Annotated[Principal, Depends(principal_of)]
From = Annotated[str | None, Query(alias="from", description="Local date (2026-11-01, in each branch's zone) "
                                   "or ISO time (2026-11-01T08:00:00+08:00); inclusive.")]
SinceTime = Annotated[str | None, Query(description="Only punches made at or after this ISO time (or local date): "
                                          "the same as from, for pull clients that keep a cursor.")]
To = Annotated[str | None, Query(alias="to", description="Local date (inclusive) or ISO time (exclusive).")]


def router(errors: dict[int, Any]) -> APIRouter:
    api = APIRouter(prefix=f"{API_PREFIX}/hr", tags=["hr"], responses=errors, dependencies=[Depends(strict_query)])
    _session_routes(api)
    _employee_routes(api)
    _punch_routes(api)
    _fleet_routes(api)
    _outbound_routes(api)
    return api


def _session_routes(api: APIRouter) -> None:
    @api.post("/session")
    def sign_in(body: SignInIn, hub: Hub, request: Request) -> JSONResponse:
        """Sign in with a console account: sets the session cookie; send csrf_token as X-CSRF-Token on changes."""
        token, who = accounts.sign_in(hub.db, body.username, body.password, hub.config.console.max_failures,
                                      hub.config.console.lockout_s)
        response = JSONResponse(session_body(who))
        set_session_cookie(response, request, token)
        return response

    @api.get("/session")
    def whoami(who: Who) -> dict[str, Any]:
        """Who this session or token is: role, branches."""
        return session_body(who)

    @api.delete("/session", status_code=204)
    def sign_out(request: Request, hub: Hub, who: Who) -> Response:
        """End this console session."""
        accounts.end_session(hub.db, request.cookies.get(SESSION_COOKIE, ""))
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def session_body(who: Principal) -> dict[str, Any]:
    return {"username": who.name, "role": who.role, "branches": list(who.branches) if who.branches else None,
            "csrf_token": who.csrf or None}


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    secure = request.url.scheme == "https" or request.app.state.hub.config.server.tls_cert_file is not None
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


def _employee_routes(api: APIRouter) -> None:
    @api.get("/employees", response_model=EmployeePage)
    def employees(hub: Hub, who: Who, branch: str | None = None,
                  status: Literal["active", "terminated", "all"] = "active",
                  q: Annotated[str | None, Query(max_length=100, description="Part of an id or name.")] = None,
                  offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> EmployeePage:
        """Employees, paged, by branch, status and text (id or name)."""
        return hr.list_employees(hub, who, branch, status, q, offset, limit)

    @api.post("/employees", status_code=201, response_model=EmployeeOut)
    def create_employee(emp: EmployeeIn, hub: Hub, who: Who) -> EmployeeOut:
        """Create (or re-hire) an employee with branches, cards, and photos or templates."""
        return hr.create_employee(hub, who, emp)

    @api.post("/photos/check", response_model=PhotoCheckOut)
    def check_photos(check: PhotoCheckIn, hub: Hub, who: Who) -> PhotoCheckOut:
        """Each photo's verdict (used, or no_face / several_faces / poor_quality such as a face too small /
        unreadable / too_large) by the same checks a save runs; nothing is stored. The console's new-hire
        form asks this as soon as photos are chosen."""
        return hr.check_photos(hub, who, check)

    @api.get("/employees/{employee_id}", response_model=EmployeeOut)
    def get_employee(employee_id: str, hub: Hub, who: Who) -> EmployeeOut:
        """One employee: branches, cards, template counts per model."""
        return hr.get_employee(hub, who, employee_id)

    @api.get("/employees/{employee_id}/kiosks")
    def employee_kiosks(employee_id: str, hub: Hub, who: Who) -> list[dict[str, Any]]:
        """Which kiosks of the person's branches have their templates (synced, pending, no_templates, no_model)."""
        return hr.employee_kiosks(hub, who, employee_id)

    @api.patch("/employees/{employee_id}", response_model=EmployeeOut)
    def patch_employee(employee_id: str, patch: EmployeePatch, hub: Hub, who: Who) -> EmployeeOut:
        """Change name, branches or cards; add photos or templates."""
        return hr.patch_employee(hub, who, employee_id, patch)

    @api.post("/employees/{employee_id}/device-templates/{action}", response_model=EmployeeOut)
    def device_templates(employee_id: str, action: Literal["approve", "drop"], body: DeviceTemplatesIn, hub: Hub,
                         who: Who) -> EmployeeOut:
        """Faces a kiosk enrolled for this person: approve them (then they go to every kiosk of the person's
        branches) or drop them (erased at the hub and, on their next sync, at every kiosk, the enrolling one too)."""
        return hr.review_device_templates(hub, who, employee_id, action, body.device_id)

    @api.post("/employees/{employee_id}/consent/withdraw", response_model=EmployeeOut)
    def withdraw_consent(employee_id: str, body: WithdrawIn, hub: Hub, who: Who) -> EmployeeOut:
        """The person withdrew their consent to face recognition: every template of theirs is erased at the hub
        now and at every kiosk on its next sync; cards and punches stay (card-only from now on)."""
        return hr.withdraw_consent(hub, who, employee_id, body)

    @api.get("/employees/{employee_id}/report", response_model=PersonReport)
    def person_report(employee_id: str, hub: Hub, who: Who) -> PersonReport:
        """What the hub holds about the person, for an access request: templates per model (counts, dates,
        sources), kiosk-enrolled faces, consents, cards, branches, punches (count, first, last). No vectors."""
        return hr.person_report(hub, who, employee_id)

    @api.post("/employees/{employee_id}/terminate", response_model=EmployeeOut)
    def terminate(employee_id: str, body: TerminateIn, hub: Hub, who: Who) -> EmployeeOut:
        """A leaver: erased from every kiosk on its next sync; their punches stay."""
        return hr.terminate_employee(hub, who, employee_id, body.reason)


def _punch_routes(api: APIRouter) -> None:
    @api.get("/punches", responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}})
    def punches(request: Request, hub: Hub, who: Who, since: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
                limit: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None, branch: str | None = None,
                start: From = None, end: To = None, employee_id: str | None = None, method: Method | None = None,
                direction: Direction | None = None, kind: Kind | None = None, flag: str | None = None,
                order: Literal["asc", "desc"] = "asc", since_time: SinceTime = None) -> Response:
        """Punches after cursor ``since`` (order=desc: newest first, before ``since`` when given), filtered;
        JSON lines (or CSV with Accept: text/csv). Next cursor in X-Next-Cursor, X-More says if more follow."""
        flt = hr.punch_filter(who, "punches.read", branch=branch, start=start or since_time, end=end,
                              employee_id=employee_id,
                              method=method, direction=direction, kind=kind, flag=flag, cursor=since,
                              newest_first=order == "desc")
        rows, cursor, more = hr.punches(hub, flt, limit or hub.config.server.export_page_size)
        headers = {NEXT_CURSOR_HEADER: str(cursor), MORE_HEADER: "true" if more else "false"}
        if "text/csv" in request.headers.get("accept", ""):
            return Response(as_csv(rows, EXPORT_COLUMNS), media_type="text/csv; charset=utf-8", headers=headers)
        return Response(as_json_lines(rows), media_type="application/x-ndjson", headers=headers)

    @api.get("/punches/stream", responses={200: {"content": {"text/event-stream": {}}}})
    def stream(request: Request, hub: Hub, who: Who, branch: str | None = None,
               since: Annotated[int | None, Query(ge=0, le=DB_INT_MAX,
                                                  description="Start after this cursor (default: now).")] = None,
               last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
        """Server-sent events: one ``punch`` event (JSON, as in /punches) per new punch; resumes by Last-Event-ID."""
        flt = hr.punch_filter(who, "punches.read", branch=branch)
        flt.cursor = feed.start_cursor(hub, last_event_id, since)
        events = feed.punch_events(hub, flt, lambda row: json.dumps({k: row.get(k) for k in EXPORT_COLUMNS},
                                                                    ensure_ascii=False), request.app.state.stop)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @api.get("/export", responses={200: {"content": {"text/csv": {}, XLSX_TYPE: {}}}})
    def export_file(hub: Hub, who: Who, fmt: Annotated[Literal["csv", "xlsx"], Query(alias="format")] = "csv",
                    start: From = None, end: To = None, employee_id: str | None = None,
                    branch: str | None = None) -> Response:
        """Payroll file: employee id and name, branch, local date and time, direction, method, kind, flags."""
        flt = hr.punch_filter(who, "export", branch=branch, start=start, end=end, employee_id=employee_id)
        return file_response(hr.payroll(hub, flt), fmt)

    @api.post("/corrections", status_code=201)
    def correction(body: CorrectionIn, hub: Hub, who: Who) -> dict[str, Any]:
        """A correction: a new record of kind 'correction' at a past local time, with direction, reason and
        author (never an edit). 409 confirm_needed when another manual punch is near: resend with confirm."""
        return {k: v for k, v in hr.add_correction(hub, who, body).items() if k in EXPORT_COLUMNS}

    @api.get("/attendance")
    def attendance(hub: Hub, who: Who, branch: str,
                   day: Annotated[date | None, Query(alias="date", description="Local work day; default the "
                                                     "current one.")] = None
                   ) -> dict[str, Any]:
        """The day sheet: per person first IN, last OUT, worked seconds, exceptions and the punches. A work day
        runs from the branch's day_starts_at ([console] day_starts_at / branch_day_starts_at) to the next
        day's, so a punch at 02:00 after a night shift belongs to the day before."""
        return hr.day_sheet(hub, who, branch, day)

    @api.get("/today")
    def today(hub: Hub, who: Who, branch: str | None = None) -> list[dict[str, Any]]:
        """Per branch, its local today: punches, who is in and not yet, exceptions, devices offline."""
        return hr.today(hub, who, branch)


def file_response(rows: list[dict[str, Any]], fmt: str) -> Response:
    name = "punches." + fmt
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "xlsx":
        return Response(as_xlsx(rows, PAYROLL_COLUMNS), media_type=XLSX_TYPE, headers=headers)
    # A BOM, so spreadsheet programs read the names as UTF-8.
    return Response("\ufeff" + as_csv(rows, PAYROLL_COLUMNS), media_type="text/csv; charset=utf-8", headers=headers)


def _fleet_routes(api: APIRouter) -> None:
    @api.get("/devices", response_model=list[DeviceStatus])
    def list_devices(hub: Hub, who: Who, branch: str | None = None) -> list[DeviceStatus]:
        """Every device: state (online/offline by heartbeat age), last heartbeat, counts, open issues."""
        return hr.list_devices(hub, who, branch)

    @api.get("/devices/{device_id}", response_model=DeviceStatus)
    def device_detail(device_id: str, hub: Hub, who: Who) -> DeviceStatus:
        """One device with its gaps, forks and chain breaks."""
        return hr.device_status(hub, who, device_id)

    @api.post("/devices/{device_id}/revoke", response_model=DeviceStatus)
    def revoke(device_id: str, hub: Hub, who: Who) -> DeviceStatus:
        """Revoke a kiosk's token at once; its punches stay."""
        return hr.revoke_device(hub, who, device_id)

    @api.post("/registration-codes", status_code=201)
    def create_code(body: CodeIn, hub: Hub, who: Who) -> dict[str, str]:
        """A one-time code for a new kiosk of a branch (shown once)."""
        return hr.create_code(hub, who, body)

    @api.get("/branches")
    def list_branches(hub: Hub, who: Who) -> list[dict[str, Any]]:
        """Branches and their time zones (local dates and times in exports and sheets use them)."""
        return hr.list_branches(hub, who)

    @api.put("/branches/{code}")
    def set_branch(code: str, body: BranchIn, hub: Hub, who: Who) -> dict[str, str]:
        """Set a branch's time zone (and name)."""
        return hr.set_branch(hub, who, code, body)

    @api.get("/audit")
    def audit_trail(hub: Hub, who: Who, target: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        """Who did what (HR admins only), newest first; target: an employee, device or user."""
        return hr.audit_trail(hub, who, target, limit)


def _outbound_routes(api: APIRouter) -> None:
    """The outbound queue and webhooks (HR admins and ops without a branch limit), as `kiosk hub outbox|webhook`."""

    @api.get("/outbox")
    def outbox(hub: Hub, who: Who, status: Literal["pending", "delivered", "parked", "skipped"] | None = None,
               subscription: str | None = None,
               limit: Annotated[int, Query(ge=1, le=10000)] = 100) -> list[dict[str, Any]]:
        """Records of the outbound queue, oldest first: status, attempts, next attempt, last error."""
        return hr.outbox(hub, who, status, subscription, limit)

    @api.post("/outbox/retry")
    def outbox_retry(body: OutboxActionIn, hub: Hub, who: Who) -> dict[str, int]:
        """Send parked or skipped records again, now, with a fresh count of attempts."""
        return {"changed": hr.outbox_action(hub, who, "retry", body)}

    @api.post("/outbox/skip")
    def outbox_skip(body: OutboxActionIn, hub: Hub, who: Who) -> dict[str, int]:
        """Never send these records (pending or parked); the employee's later events go on."""
        return {"changed": hr.outbox_action(hub, who, "skip", body)}

    @api.get("/webhooks")
    def webhooks(hub: Hub, who: Who) -> list[dict[str, Any]]:
        """Subscriptions (webhooks and connectors) with their queue counts; never their secrets."""
        return hr.webhook_list(hub, who)

    @api.post("/webhooks", status_code=201)
    def webhook_add(body: WebhookIn, hub: Hub, who: Who) -> dict[str, Any]:
        """Send events to a URL from now on; the answer holds the signing secret, shown this once."""
        return hr.webhook_add(hub, who, body)

    @api.delete("/webhooks/{subscription_id}")
    def webhook_remove(subscription_id: str, hub: Hub, who: Who) -> dict[str, int]:
        """Stop a webhook; its undelivered records are skipped."""
        return {"skipped": hr.webhook_remove(hub, who, subscription_id)}

    @api.post("/webhooks/{subscription_id}/test")
    def webhook_test(subscription_id: str, hub: Hub, who: Who) -> dict[str, Any]:
        """Send a signed attendance.webhook.test event now: accepted or not, the error, the time taken."""
        return hr.webhook_test(hub, who, subscription_id)
