"""The live punch feed: server-sent events of new punches, read from the database (so any worker can serve
it) every ``live_poll_s``, limited to the caller's branches."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from kiosk.base.text import DB_INT_MAX
from sync.hub import export
from sync.hub.hr import HubContext

log = logging.getLogger(__name__)

PAGE = 200
KEEPALIVE_S = 15.0
RETRY_MS = 2000


def latest_cursor(hub: HubContext) -> int:
    with hub.db.transaction(write=False) as tx:
        return int(tx.row("SELECT value FROM counters WHERE name = 'punch'")["value"])


def start_cursor(hub: HubContext, last_event_id: str | None, since: int | None) -> int:
    """Resume after the browser's Last-Event-ID, else after ``since``, else from now on."""
    text = (last_event_id or "").strip()
    if text.isascii() and text.isdigit() and int(text) <= DB_INT_MAX:
        return int(text)
    return since if since is not None else latest_cursor(hub)


async def punch_events(hub: HubContext, flt: export.PunchFilter, render: Callable[[dict[str, Any]], str],
                       stop: threading.Event) -> AsyncIterator[str]:
    """``event: punch`` messages (data rendered by ``render``, one line) until the hub stops."""
    yield f"retry: {RETRY_MS}\n\n"
    quiet_since = time.monotonic()
    while not stop.is_set():
        rows, cursor, _ = await run_in_threadpool(export.query, hub.db, flt, PAGE, hub.tz)
        for row in rows:
            yield f"id: {row['cursor']}\nevent: punch\ndata: {render(row)}\n\n"
        if rows or cursor != flt.cursor:
            flt.cursor = cursor
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(hub.config.console.live_poll_s)
