"""The kiosk screen's web app (Starlette): the page, its catalogues, live events (server-sent events),
the MJPEG preview, and admin mode's JSON API behind the PIN session cookie."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kiosk.base.errors import KioskError
from kiosk.base.text import check_text
from kiosk.ui import admin
from kiosk.ui.config import is_loopback
from kiosk.ui.errors import UiError, from_kiosk_error
from kiosk.ui.i18n import LANGUAGES, catalogue
from kiosk.ui.service import UiService

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "kiosk_admin"
# Admin requests that change something must carry this header: a cross-site form cannot set it.
ADMIN_HEADER = "x-kiosk-admin"
# The teller's 上班 / 下班 tap carries this one, for the same reason.
SCREEN_HEADER = "x-kiosk-screen"
STATUS_INTERVAL_S = 2.0
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

Handler = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (pure ASGI, so streams are not buffered)."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        async def send_with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [h for h in SECURITY_HEADERS if h[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def refusal(exc: UiError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status)


async def body_of(request: Request) -> dict:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UiError("bad_request") from None
    if not isinstance(data, dict):
        raise UiError("bad_request")
    return data


def text(data: dict, key: str, limit: int = 200) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise UiError("bad_request")
    try:
        return check_text(value[:limit], key)
    except KioskError as exc:
        raise from_kiosk_error(exc) from None


def public_routes(service: UiService) -> list:
    async def index(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-store"})

    async def state(_: Request) -> Response:
        return JSONResponse(await run_in_threadpool(service.state))

    async def i18n(request: Request) -> Response:
        lang = request.path_params["lang"]
        if lang not in LANGUAGES:
            return refusal(UiError("unknown_language", 404, lang=lang))
        return JSONResponse(catalogue(lang))

    async def events(request: Request) -> Response:
        if not await seen_by_admin(service, request):
            return refusal(UiError("not_logged_in", 401))
        return StreamingResponse(event_stream(service), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def preview_mjpg(request: Request) -> Response:
        if not await seen_by_admin(service, request):
            return refusal(UiError("not_logged_in", 401))
        return StreamingResponse(mjpeg_stream(service), media_type="multipart/x-mixed-replace; boundary=frame")

    async def preview_jpg(request: Request) -> Response:
        if not await seen_by_admin(service, request):
            return refusal(UiError("not_logged_in", 401))
        _, jpeg = await run_in_threadpool(service.preview.jpeg)
        if jpeg is None:
            return Response(status_code=204)
        return Response(jpeg, media_type="image/jpeg")

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def direction(request: Request) -> Response:
        """The tap on 上班 (IN) or 下班 (OUT) for the punch waiting for it (direction = buttons)."""
        if request.headers.get(SCREEN_HEADER) != "1":
            return refusal(UiError("forbidden", 403))
        try:
            data = await body_of(request)
            event = await run_in_threadpool(service.daemon.policy.choose_direction, text(data, "choice_id", 64),
                                            text(data, "direction", 8))
        except UiError as exc:
            return refusal(exc)
        except KioskError as exc:
            return refusal(from_kiosk_error(exc))
        return JSONResponse({"result": "ok", "event": event.to_dict()})

    return [Route("/", index), Route("/api/state", state), Route("/api/i18n/{lang}", i18n),
            Route("/api/events", events), Route("/api/preview.mjpg", preview_mjpg),
            Route("/api/preview.jpg", preview_jpg), Route("/healthz", healthz),
            Route("/api/direction", direction, methods=["POST"])]


async def seen_by_admin(service: UiService, request: Request) -> bool:
    """Whether this request may see the camera and the events (names): always from this machine (the
    touchscreen); from elsewhere (ui.allow_remote) only with the admin session."""
    peer = request.client.host if request.client else ""
    if is_loopback(peer):
        return True
    return await run_in_threadpool(service.auth.check, request.cookies.get(COOKIE), False)


async def event_stream(service: UiService):  # noqa: ANN201 - async generator of SSE chunks
    """Events as they happen, plus the device/clock status every STATUS_INTERVAL_S."""
    queue = service.events.connect()
    try:
        yield sse(await run_in_threadpool(service.status))
        while not service.stopping:
            try:
                message = await asyncio.wait_for(queue.get(), timeout=STATUS_INTERVAL_S)
            except TimeoutError:
                await run_in_threadpool(service.auth.expire_idle)
                message = await run_in_threadpool(service.status)
            yield sse(message)
    finally:
        service.events.disconnect(queue)


def sse(message: dict) -> bytes:
    return f"data: {json.dumps(message, ensure_ascii=False)}\n\n".encode()


async def mjpeg_stream(service: UiService):  # noqa: ANN201 - async generator of multipart chunks
    period_s = 1.0 / service.cfg.preview_fps
    last = None
    while not service.stopping:
        key, jpeg = await run_in_threadpool(service.preview.jpeg)
        if jpeg and key != last:
            last = key
            yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n" % (len(jpeg), jpeg)
        await asyncio.sleep(period_s)


def admin_routes(service: UiService) -> list:
    """The admin API: every route but login needs the session cookie; changes need ADMIN_HEADER."""
    daemon, store = service.daemon, service.daemon.store

    def guarded(handler: Handler, login: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            if request.method != "GET" and request.headers.get(ADMIN_HEADER) != "1":
                return refusal(UiError("forbidden", 403))
            if not login and not await run_in_threadpool(service.auth.check, request.cookies.get(COOKIE)):
                return refusal(UiError("not_logged_in", 401))
            try:
                return await handler(request)
            except UiError as exc:
                return refusal(exc)
            except KioskError as exc:
                log.warning("admin request %s failed: %s", request.url.path, exc.what)
                return refusal(from_kiosk_error(exc))

        return endpoint

    async def login(request: Request) -> Response:
        pin = text(await body_of(request), "pin", 100)
        result = await run_in_threadpool(service.auth.login, pin)
        response = JSONResponse(result.to_dict(), status_code=200 if result.ok else 403)
        if result.ok:
            response.set_cookie(COOKIE, result.token, httponly=True, samesite="strict", path="/")
        return response

    async def logout(request: Request) -> Response:
        await run_in_threadpool(service.auth.logout, request.cookies.get(COOKIE))
        response = JSONResponse({"result": "ok"})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def session(_: Request) -> Response:
        return JSONResponse({"logged_in": True, "idle_logout_s": service.cfg.admin_idle_logout_s})

    async def employees(request: Request) -> Response:
        search = request.query_params.get("q", "")[:100]
        rows = await run_in_threadpool(admin.list_employees, store, search)
        return JSONResponse({"employees": rows})

    async def erase(request: Request) -> Response:
        data = await body_of(request)
        return JSONResponse(await run_in_threadpool(admin.erase, store, request.path_params["employee_id"],
                                                    text(data, "reason")))

    async def read_card(request: Request) -> Response:
        employee_id = request.path_params["employee_id"]
        await run_in_threadpool(admin.require_employee, store, employee_id)
        if daemon.rfid is None:
            raise UiError("no_reader", 409)
        card = await run_in_threadpool(service.cards.wait, service.cfg.card_wait_s)
        if card is None:
            raise UiError("no_card_read", 408)
        return JSONResponse(await run_in_threadpool(admin.add_card, store, employee_id, card))

    async def remove_card(request: Request) -> Response:
        p = request.path_params
        return JSONResponse(await run_in_threadpool(admin.remove_card, store, p["employee_id"], p["card"]))

    async def punch(request: Request) -> Response:
        data = await body_of(request)
        return JSONResponse(await run_in_threadpool(admin.manual_punch, daemon, text(data, "employee_id", 64),
                                                    text(data, "reason", 1000), text(data, "time", 40),
                                                    text(data, "direction", 8), data.get("confirm") is True))

    async def health(_: Request) -> Response:
        return JSONResponse(await run_in_threadpool(admin.health, daemon))

    return [
        Route("/api/admin/login", guarded(login, login=True), methods=["POST"]),
        Route("/api/admin/logout", guarded(logout, login=True), methods=["POST"]),
        Route("/api/admin/session", guarded(session)),
        Route("/api/admin/employees", guarded(employees)),
        Route("/api/admin/employees/{employee_id}/erase", guarded(erase), methods=["POST"]),
        Route("/api/admin/employees/{employee_id}/cards/read", guarded(read_card), methods=["POST"]),
        Route("/api/admin/employees/{employee_id}/cards/{card}/remove", guarded(remove_card), methods=["POST"]),
        Route("/api/admin/punch", guarded(punch), methods=["POST"]),
        Route("/api/admin/health", guarded(health)),
        *enrol_routes(service, guarded),
    ]


def enrol_routes(service: UiService, guarded: Callable[[Handler], Handler]) -> list:
    enrol = service.enrol

    async def start(request: Request) -> Response:
        data = await body_of(request)
        language = text(data, "consent_language", 2) if "consent_language" in data else "zh"
        return JSONResponse(await run_in_threadpool(enrol.start, text(data, "employee_id", 64),
                                                    text(data, "name", 200), text(data, "card", 40),
                                                    data.get("consent") is True, language))

    async def progress(_: Request) -> Response:
        return JSONResponse(await run_in_threadpool(enrol.progress))

    async def confirm(request: Request) -> Response:
        proceed = (await body_of(request)).get("proceed") is True
        return JSONResponse(await run_in_threadpool(enrol.confirm, proceed))

    async def retry(_: Request) -> Response:
        return JSONResponse(await run_in_threadpool(enrol.retry))

    async def cancel(_: Request) -> Response:
        return JSONResponse(await run_in_threadpool(enrol.cancel))

    async def close(_: Request) -> Response:
        await run_in_threadpool(enrol.close)
        return JSONResponse({"result": "ok"})

    return [
        Route("/api/admin/enrol", guarded(start), methods=["POST"]),
        Route("/api/admin/enrol", guarded(progress), methods=["GET"]),
        Route("/api/admin/enrol/confirm", guarded(confirm), methods=["POST"]),
        Route("/api/admin/enrol/retry", guarded(retry), methods=["POST"]),
        Route("/api/admin/enrol/cancel", guarded(cancel), methods=["POST"]),
        Route("/api/admin/enrol/close", guarded(close), methods=["POST"]),
    ]


def create_app(service: UiService) -> Starlette:
    """The ASGI app for one running kiosk."""
    hosts = LOOPBACK_HOSTS if is_loopback(service.cfg.bind) else ["*"]
    routes = [*public_routes(service), *admin_routes(service), Mount("/static", StaticFiles(directory=STATIC_DIR))]
    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    return SecurityHeaders(app)
