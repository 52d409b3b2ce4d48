"""The console's sign-in state: who holds the session cookie, CSRF checks on forms, errors as catalogue keys."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request

from kiosk.base.errors import Conflict, InvalidInput, KioskError, NotFound
from kiosk.base.text import check_text
from sync.errors import AccountLocked, Forbidden, NeedsConfirmation, Unauthorized
from sync.hub import accounts
from sync.hub.accounts import Principal
from sync.hub.hr import HubContext
from sync.hub.hrapi import SESSION_COOKIE

log = logging.getLogger(__name__)

PRE_CSRF_COOKIE = "kiosk_hub_signin"
ERROR_KEYS: list[tuple[type[KioskError], str]] = [
    (AccountLocked, "error.locked"), (Unauthorized, "error.signin"), (Forbidden, "error.forbidden"),
    (NeedsConfirmation, "error.confirm"), (NotFound, "error.not_found"), (Conflict, "error.conflict"),
    (InvalidInput, "error.invalid"),
]


class SignInNeeded(Exception):
    """No valid session: the console sends the browser to the sign-in page."""


def hub_of(request: Request) -> HubContext:
    return request.app.state.hub


def current(request: Request) -> Principal:
    """The signed-in user, or SignInNeeded."""
    hub = hub_of(request)
    who = accounts.session_principal(hub.db, request.cookies.get(SESSION_COOKIE, ""),
                                     hub.config.console.session_idle_min)
    if who is None:
        raise SignInNeeded()
    return who


async def checked_form(request: Request, who: Principal) -> FormData:
    """The posted form, after checking it carries this session's CSRF token."""
    form = await request.form()
    if not accounts.csrf_ok(who, str(form.get("csrf", ""))):
        raise Forbidden("missing or wrong CSRF token", fix="Reload the page and submit again.")
    return plain_form(form)


def plain_form(form: FormData) -> FormData:
    """The form, once every text field is plain text (kiosk.base.text; files are checked as photos)."""
    for name, value in form.multi_items():
        if isinstance(value, str):
            check_text(value, f"form field {name}")
    return form


def new_pre_csrf() -> str:
    return secrets.token_urlsafe(24)


def pre_csrf_ok(request: Request, sent: str) -> bool:
    """The sign-in form echoes the random value of its own cookie (double submit)."""
    cookie = request.cookies.get(PRE_CSRF_COOKIE, "")
    return bool(cookie) and bool(sent) and hmac.compare_digest(cookie, sent)


def problem(exc: Exception) -> dict[str, Any]:
    """An error as the page shows it: a catalogue key, and the detail sentence."""
    if isinstance(exc, ValidationError):
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_url=False)[:5])
        return {"key": "error.invalid", "detail": fields}
    for kind, key in ERROR_KEYS:
        if isinstance(exc, kind):
            return {"key": key, "detail": exc.what}
    return {"key": "error.refused", "detail": getattr(exc, "what", str(exc))}


def form_list(value: Any) -> list[str]:
    """A comma- or space-separated form field as a list."""
    return [part for part in str(value or "").replace(",", " ").split() if part]
