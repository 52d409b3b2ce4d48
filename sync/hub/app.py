"""The hub's HTTP API (protocol v1): device and HR routes, auth, limits and error bodies."""

# No `from __future__ import annotations` here: FastAPI reads these annotations at run time.
import asyncio
import contextlib
import logging
import secrets
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic.warnings import UnsupportedFieldAttributeWarning
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiosk import __version__
from kiosk.base.errors import Conflict, InvalidInput, KioskError, NotFound, StoreError
from kiosk.base.text import DB_INT_MAX, check_text
from kiosk.base.timeutil import iso_utc, utc_now
from sync.errors import (
    AccountLocked,
    Forbidden,
    HubBusy,
    NeedsConfirmation,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from sync.hub import console, devices, hrapi, ingest, people
from sync.hub.config import HubConfig
from sync.hub.db.base import HubDb
from sync.hub.devices import Device
from sync.hub.faces import TemplateMaker
from sync.hub.field import routes as field_routes
from sync.hub.hr import HubContext
from sync.hub.hrapi import UnknownParameter
from sync.hub.middleware import HubMiddleware
from sync.protocol import (
    API_PREFIX,
    PROTOCOL_VERSION,
    DeviceEnrolmentBatch,
    DeviceEnrolmentResponse,
    ErrorResponse,
    Heartbeat,
    HeartbeatResponse,
    PunchBatch,
    PunchBatchResponse,
    RegisterRequest,
    RegisterResponse,
    RosterPage,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[KioskError], int, str]] = [
    (UnknownParameter, 400, "unknown_parameter"), (AccountLocked, 429, "locked"),
    (TooManyRequests, 429, "too_many_requests"),
    (Unauthorized, 401, "unauthorized"), (Forbidden, 403, "forbidden"), (NotFound, 404, "not_found"),
    (NeedsConfirmation, 409, "confirm_needed"), (Conflict, 409, "conflict"), (PayloadTooLarge, 413, "too_large"),
    (InvalidInput, 422, "invalid_request"),
    (HubBusy, 503, "busy"), (StoreError, 503, "database_unavailable"),
]
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)}


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


DeviceDep = Annotated[Device, Depends(device_auth)]


def plain_parameters(request: Request) -> None:
    """Every route's path and query parameters hold plain text (kiosk.base.text), named when they do not:
    a NUL in ``/v1/hr/employees/E%001`` or ``?branch=B%00`` is a 422, never a database error."""
    for name, value in request.path_params.items():
        check_text(str(value), f"path parameter {name}")
    for name, value in request.query_params.multi_items():
        check_text(name, "a query parameter's name")
        check_text(value, f"query parameter {name}")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KioskError)
    async def kiosk_error(request: Request, exc: KioskError) -> JSONResponse:
        status, code = 400, "refused"
        for kind, kind_status, kind_code in STATUS_BY_ERROR:
            if isinstance(exc, kind):
                status, code = kind_status, kind_code
                break
        headers = _error_headers(status, exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.what)
        if not request.url.path.startswith(f"{API_PREFIX}/"):
            return console.error_page(request, status, exc)
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
        if exc.status_code == 404 and not request.url.path.startswith(f"{API_PREFIX}/"):
            return console.error_page(request, 404, NotFound(f"no page {request.url.path}"))
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


def _error_headers(status: int, exc: KioskError) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status == 429:
        return {"Retry-After": str(getattr(exc, "retry_after_s", 1))}
    return {"Retry-After": "2"} if status == 503 else None


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
                  docs_url=None, redoc_url=None, lifespan=_outbound_lifespan(config, db, maker),
                  dependencies=[Depends(plain_parameters)],
                  description=f"Protocol v{PROTOCOL_VERSION}: kiosks upload punches and download their branch's "
                  "roster; HR manages employees and reads punches. Every call but register and health sends "
                  "Authorization: Bearer TOKEN.")
    app.state.db = db
    app.state.hub = HubContext(db, config, maker)
    app.state.stop = threading.Event()  # set when the server stops: ends live feeds
    app.state.outbound = None
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
        result = ingest.ingest(db, device, batch.punches, server.punch_max_ahead_s)
        if result.accepted and app.state.outbound is not None:
            app.state.outbound.wake()
        return result

    @app.post(f"{API_PREFIX}/device/enrolments", response_model=DeviceEnrolmentResponse, tags=["device"],
              responses=ERRORS)
    def enrolments(batch: DeviceEnrolmentBatch, device: DeviceDep) -> DeviceEnrolmentResponse:
        """Faces enrolled at the kiosk (source 'device'): idempotent by the kiosk's enrolment id, one
        verdict per enrolment; the branch's other kiosks receive them with their next roster."""
        return DeviceEnrolmentResponse(results=[people.device_enrolment_record(db, device, e)
                                                for e in batch.enrolments])

    @app.get(f"{API_PREFIX}/device/roster", response_model=RosterPage, tags=["device"], responses=ERRORS)
    def roster(device: DeviceDep, cursor: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0) -> RosterPage:
        """This branch's people changed since ``cursor`` (templates of this device's model only)."""
        return people.roster_page(db, device, cursor, server.roster_page_size)

    @app.post(f"{API_PREFIX}/device/heartbeat", response_model=HeartbeatResponse, tags=["device"], responses=ERRORS)
    def heartbeat(beat: Heartbeat, device: DeviceDep) -> HeartbeatResponse:
        """Health report: version, model, backlog, clock, disk."""
        devices.heartbeat(db, device, beat)
        return HeartbeatResponse(device_id=device.id, branch=device.branch, max_batch=server.max_batch,
                                 hub_time_utc=iso_utc(utc_now()))

    app.include_router(hrapi.router(ERRORS))
    field_routes.install(app, ERRORS)
    console.install(app)
    _quiet_false_alias_warnings()
    return app


def _quiet_false_alias_warnings() -> None:
    """Silence pydantic's false "alias has no effect" warning about FastAPI's request bodies, and only that.

    FastAPI gives a body parameter its own name as an alias and builds the parameter's validator with that
    warning silenced (fastapi/_compat/v2.py, ModelField). The wire models defer building their validators
    (sync.protocol.WireModel, for the CLI's start-up), so the validator is built at a route's first request
    instead, outside that silence, and pydantic >= 2.12 printed one warning per body parameter into the hub's
    log (pydantic issue #12356; the alias does take effect). No model of ours sets an alias through Field():
    every such alias is FastAPI's. A process-wide filter, added again (not twice) with every app."""
    warnings.filterwarnings("ignore", message="The 'alias' attribute with value ",
                            category=UnsupportedFieldAttributeWarning)


def _outbound_lifespan(config: HubConfig, db: HubDb, maker: TemplateMaker) -> Callable:
    """Start the delivery worker with each worker process — built in the background, so the process serves
    at once — and stop it (in-flight deliveries finish) with the process."""

    def boot(app: FastAPI) -> None:
        from sync.hub.outbound.service import build_engine
        try:
            app.state.outbound = build_engine(config, db, maker).start()
        except Exception:  # noqa: BLE001 - the API keeps serving; the log says why nothing is delivered
            log.exception("the outbound delivery worker did not start")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        booting = threading.Thread(target=boot, args=(app,), name="outbound-boot", daemon=True)
        if config.outbound.enabled:
            booting.start()
        try:
            yield
        finally:
            if booting.is_alive() or app.state.outbound is not None:
                await asyncio.to_thread(booting.join)
                if app.state.outbound is not None:
                    await asyncio.to_thread(app.state.outbound.stop)

    return lifespan


def _limits(device_max: int, hr_max: int) -> Callable[[str], int]:
    """Devices' calls have the device limit; HR's API and the console (photo uploads) the HR limit."""
    device_prefix = f"{API_PREFIX}/device/"

    def limit_for(path: str) -> int:
        return device_max if path.startswith(device_prefix) else hr_max

    return limit_for
