"""HR's console in the browser, served by the hub at / (server-rendered pages, a little JS, zh/en)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from kiosk.base.errors import KioskError
from sync.hub.console import forms, pages
from sync.hub.console.render import HERE, page
from sync.hub.console.session import SignInNeeded, current, problem

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    """Add the console's pages, forms and static files to the hub's app (kept out of the OpenAPI)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(pages.router)
    app.include_router(forms.router)

    @app.exception_handler(SignInNeeded)
    async def sign_in_first(request: Request, exc: SignInNeeded) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)


def error_page(request: Request, status: int, exc: KioskError) -> Response:
    """A refused console request (not found, forbidden...) as a page in the user's language."""
    try:
        who = current(request)
    except SignInNeeded:
        who = None
    return page(request, "error.html", who, http_status=status, error=problem(exc))
