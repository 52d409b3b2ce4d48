"""ASGI middleware: refuse oversized bodies before reading them, and stamp every answer with hub time."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException

from kiosk.base.timeutil import HUB_TIME_HEADER, iso_utc, utc_now

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
DRAIN_MAX_BYTES = 64 * 2**20


class BodyTooLarge(HTTPException):
    """Raised from receive() when a body without Content-Length grows past the limit.

    An HTTPException, so FastAPI's body reader lets it through to the 413 error handler.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


def _too_large_body(limit: int) -> bytes:
    return json.dumps({"error": {"code": "too_large", "message": f"the request body is over {limit} bytes",
                                 "fix": "Send smaller requests (fewer punches or photos per call).",
                                 "details": []}}).encode()


async def _drain(receive: Receive, received: int, more: bool) -> None:
    """Read and drop the rest of a refused body, so the client reads our 413 instead of a reset
    connection; past DRAIN_MAX_BYTES the connection is simply closed."""
    while more and received < DRAIN_MAX_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        received += len(message.get("body", b""))
        more = message.get("more_body", False)


class HubMiddleware:
    """Body-size limit per path, and an ``X-Hub-Time`` header (ms precision) on every response.

    The standard ``Date`` header has one-second resolution; kiosks use ``X-Hub-Time`` when present
    to measure their clock offset more precisely.
    """

    def __init__(self, app: Any, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        started = False

        async def stamped_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((HUB_TIME_HEADER.lower().encode(), iso_utc(utc_now()).encode()))
                message = {**message, "headers": headers}
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _drain(receive, 0, more=True)
            await self._refuse(stamped_send, limit)
            return
        received = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await _drain(receive, received, message.get("more_body", False))
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, stamped_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(stamped_send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = _too_large_body(limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
