"""The hub's HTTP API (protocol v1): device and HR routes, auth, limits and error bodies."""

# No `from __future__ import annotations` here: FastAPI reads these annotations at run time.
import logging
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiosk import __version__
from kiosk.base.errors import Conflict, InvalidInput, KioskError, NotFound, StoreError
from kiosk.base.timeutil import iso_utc, utc_now
from sync.errors import Forbidden, HubBusy, PayloadTooLarge, Unauthorized
from sync.hub import devices, export, ingest, people
from sync.hub.config import HubConfig
from sync.hub.db.base import HubDb
from sync.hub.devices import Device
from sync.hub.faces import TemplateMaker
from sync.hub.middleware import HubMiddleware
from sync.protocol import (
    API_PREFIX,
    MORE_HEADER,
    NEXT_CURSOR_HEADER,
    PROTOCOL_VERSION,
    DeviceEnrolmentBatch,
    DeviceEnrolmentResponse,
    DeviceStatus,
    EmployeeIn,
    EmployeeOut,
    EmployeePatch,
    ErrorResponse,
    Heartbeat,
    HeartbeatResponse,
    PunchBatch,
    PunchBatchResponse,
    RegisterRequest,
    RegisterResponse,
    RosterPage,
    TerminateIn,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[KioskError], int, str]] = [
    (Unauthorized, 401, "unauthorized"), (Forbidden, 403, "forbidden"), (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"), (PayloadTooLarge, 413, "too_large"), (InvalidInput, 422, "invalid_request"),
    (HubBusy, 503, "busy"), (StoreError, 503, "database_unavailable"),
]
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 503)}


def error_response(status: int, code: str, message: str, fix: str = "",
                   details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "fix": fix, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this call needs an Authorization: Bearer TOKEN header",
                           fix="Send the device token (kiosks) or an HR API token.")
    return token.strip()


def device_auth(request: Request) -> Device:
    return devices.authenticate_device(request.app.state.db, _bearer(request))


def hr_auth(request: Request) -> str:
    role = devices.api_role(request.app.state.db, _bearer(request))
    if role != "hr":
        raise Forbidden(f"role {role} may not use the HR API")
    return role


DeviceDep = Annotated[Device, Depends(device_auth)]
HrDep = Annotated[str, Depends(hr_auth)]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KioskError)
    async def kiosk_error(request: Request, exc: KioskError) -> JSONResponse:
        status, code = 400, "refused"
        for kind, kind_status, kind_code in STATUS_BY_ERROR:
            if isinstance(exc, kind):
                status, code = kind_status, kind_code
                break
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "2"} if status == 503 else None
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.what)
        return error_response(status, code, exc.what, exc.fix, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "the request body is not valid JSON",
                                  "Send a JSON object as described in /v1/openapi.json.")
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                   for e in errors[:50]]
        return error_response(422, "invalid_request", f"{len(errors)} field(s) are invalid",
                              "Fix each field listed in details.", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body that is not UTF-8 text (or not decodable JSON at all)
            return error_response(400, "malformed_json", "the request body is not valid JSON (UTF-8 text)",
                                  "Send a JSON object as described in /v1/openapi.json.")
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        incident = secrets.token_hex(4)
        if _is_transient_db_error(exc):
            log.warning("database busy or unreachable (%s): %s", incident, exc)
            return error_response(503, "busy", "the hub's database is busy or unreachable; retry shortly",
                                  headers={"Retry-After": "2"})
        log.error("internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", f"internal error (incident {incident}); it was logged on the hub",
                              "Retry later; if it persists, give the incident id to the hub operator.")


def _is_transient_db_error(exc: Exception) -> bool:
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return True
    try:
        import psycopg
        from psycopg_pool import PoolTimeout
    except ImportError:
        return False
    return isinstance(exc, (psycopg.OperationalError, PoolTimeout))


def create_app(config: HubConfig, db: HubDb, maker: TemplateMaker) -> FastAPI:
    """The hub's ASGI application over an open database."""
    server = config.server
    app = FastAPI(title="Branch kiosk hub", version=__version__, openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None,
                  description=f"Protocol v{PROTOCOL_VERSION}: kiosks upload punches and download their branch's "
                  "roster; HR manages employees and reads punches. Every call but register and health sends "
                  "Authorization: Bearer TOKEN.")
    app.state.db = db
    app.add_middleware(HubMiddleware, limit_for=_limits(server.max_body_bytes, server.max_hr_body_bytes))
    _install_error_handlers(app)

    @app.get(f"{API_PREFIX}/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness for load balancers: no auth, no database write."""
        return {"status": "ok", "protocol": PROTOCOL_VERSION, "version": __version__, "database": db.dialect,
                "hub_time_utc": iso_utc(utc_now())}

    @app.post(f"{API_PREFIX}/device/register", status_code=201, response_model=RegisterResponse,
              tags=["device"], responses=ERRORS)
    def register(req: RegisterRequest) -> RegisterResponse:
        """Exchange a one-time code for a device id and token (the token is shown only here)."""
        device, token = devices.register(db, req)
        return RegisterResponse(device_id=device.id, token=token, branch=device.branch, max_batch=server.max_batch,
                                hub_time_utc=iso_utc(utc_now()))

    @app.post(f"{API_PREFIX}/device/punches", response_model=PunchBatchResponse, tags=["device"], responses=ERRORS)
    def upload(batch: PunchBatch, device: DeviceDep) -> PunchBatchResponse:
        """Upload punches: idempotent by punch id, one verdict per record."""
        if len(batch.punches) > server.max_batch:
            raise PayloadTooLarge(f"a batch of {len(batch.punches)} punches; at most {server.max_batch} per request",
                                  fix=f"Send at most {server.max_batch} punches per request.")
        return ingest.ingest(db, device, batch.punches)

    @app.post(f"{API_PREFIX}/device/enrolments", response_model=DeviceEnrolmentResponse, tags=["device"],
              responses=ERRORS)
    def enrolments(batch: DeviceEnrolmentBatch, device: DeviceDep) -> DeviceEnrolmentResponse:
        """Faces enrolled at the kiosk (source 'device'): idempotent by the kiosk's enrolment id, one
        verdict per enrolment; the branch's other kiosks receive them with their next roster."""
        return DeviceEnrolmentResponse(results=[people.device_enrolment(db, device, e) for e in batch.enrolments])

    @app.get(f"{API_PREFIX}/device/roster", response_model=RosterPage, tags=["device"], responses=ERRORS)
    def roster(device: DeviceDep, cursor: Annotated[int, Query(ge=0)] = 0) -> RosterPage:
        """This branch's people changed since ``cursor`` (templates of this device's model only)."""
        return people.roster_page(db, device, cursor, server.roster_page_size)

    @app.post(f"{API_PREFIX}/device/heartbeat", response_model=HeartbeatResponse, tags=["device"], responses=ERRORS)
    def heartbeat(beat: Heartbeat, device: DeviceDep) -> HeartbeatResponse:
        """Health report: version, model, backlog, clock, disk."""
        devices.heartbeat(db, device, beat)
        return HeartbeatResponse(device_id=device.id, branch=device.branch, max_batch=server.max_batch,
                                 hub_time_utc=iso_utc(utc_now()))

    _hr_routes(app, config, db, maker)
    return app


def _known_models(db: HubDb, maker: TemplateMaker) -> dict[str, int | None]:
    known: dict[str, int | None] = dict(devices.model_dims_in_use(db))
    known.update(maker.model_ids())
    return known


def _hr_routes(app: FastAPI, config: HubConfig, db: HubDb, maker: TemplateMaker) -> None:
    server, faces = config.server, config.faces

    def templates_for(photos: list[str], given: list[Any]) -> people.Templates:
        if photos and not faces.enabled:
            raise InvalidInput("this hub does not make templates from photos (faces.enabled = false)",
                               fix="Send ready templates instead of photos.")
        return people.prepare_templates(photos, given, maker, _known_models(db, maker), faces.max_photo_bytes)

    @app.post(f"{API_PREFIX}/hr/employees", status_code=201, response_model=EmployeeOut, tags=["hr"],
              responses=ERRORS)
    def create_employee(emp: EmployeeIn, _: HrDep) -> EmployeeOut:
        """Create (or re-hire) an employee with branches, cards, and photos or templates."""
        out, _rehired = people.create_employee(db, emp, templates_for(emp.photos, emp.templates))
        return out

    @app.get(f"{API_PREFIX}/hr/employees/{{employee_id}}", response_model=EmployeeOut, tags=["hr"], responses=ERRORS)
    def get_employee(employee_id: str, _: HrDep) -> EmployeeOut:
        """One employee: branches, cards, template counts per model."""
        return people.get_employee(db, employee_id)

    @app.patch(f"{API_PREFIX}/hr/employees/{{employee_id}}", response_model=EmployeeOut, tags=["hr"],
               responses=ERRORS)
    def patch_employee(employee_id: str, patch: EmployeePatch, _: HrDep) -> EmployeeOut:
        """Change name, branches or cards; add photos or templates."""
        return people.patch_employee(db, employee_id, patch, templates_for(patch.photos, patch.templates))

    @app.post(f"{API_PREFIX}/hr/employees/{{employee_id}}/terminate", response_model=EmployeeOut, tags=["hr"],
              responses=ERRORS)
    def terminate(employee_id: str, body: TerminateIn, _: HrDep) -> EmployeeOut:
        """A leaver: erased from every kiosk on its next sync; their punches stay."""
        return people.terminate_employee(db, employee_id, body.reason)

    @app.get(f"{API_PREFIX}/hr/punches", tags=["hr"], responses={200: {"content": {
        "application/x-ndjson": {}, "text/csv": {}}}, **ERRORS})
    def punches(request: Request, _: HrDep, since: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int | None, Query(ge=1)] = None, branch: str | None = None) -> Response:
        """Punches after cursor ``since``: JSON lines (or CSV with Accept: text/csv). Next cursor in X-Next-Cursor."""
        size = min(limit or server.export_page_size, server.export_page_size)
        rows = export.punches_since(db, since, size, branch)
        headers = {NEXT_CURSOR_HEADER: str(rows[-1]["cursor"] if rows else since),
                   MORE_HEADER: "true" if len(rows) == size else "false"}
        if "text/csv" in request.headers.get("accept", ""):
            return Response(export.as_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
        return Response(export.as_json_lines(rows), media_type="application/x-ndjson", headers=headers)

    @app.get(f"{API_PREFIX}/hr/devices", response_model=list[DeviceStatus], tags=["hr"], responses=ERRORS)
    def list_devices(_: HrDep, branch: str | None = None) -> list[DeviceStatus]:
        """Every device: last heartbeat, counts, open issues."""
        return devices.list_devices(db, branch)

    @app.get(f"{API_PREFIX}/hr/devices/{{device_id}}", response_model=DeviceStatus, tags=["hr"], responses=ERRORS)
    def device_detail(device_id: str, _: HrDep) -> DeviceStatus:
        """One device with its gaps, forks and chain breaks."""
        return devices.device_status(db, device_id)


def _limits(device_max: int, hr_max: int) -> Callable[[str], int]:
    hr_prefix = f"{API_PREFIX}/hr/"

    def limit_for(path: str) -> int:
        return hr_max if path.startswith(hr_prefix) else device_max

    return limit_for
