"""The console's pages: Jinja2 templates, the zh/en catalogues (code passes keys, only the catalogues hold
words), display filters, and security headers on every page."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from kiosk.base.consent import CONSENT_VERSION
from sync.hub.accounts import Principal
from sync.hub.branches import Zones, load_zones
from sync.hub.field.signals import SIGNALS

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LANGUAGES = ("en", "zh")
LANG_COOKIE = "kiosk_hub_lang"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """Every key -> text of one language."""
    if lang not in LANGUAGES:
        raise ValueError(f"no console catalogue for {lang!r}")
    return json.loads((HERE / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def translator(lang: str):  # noqa: ANN201 - a callable for templates
    words = catalogue(lang)

    def t(key: str, **params: object) -> str:
        text = words.get(key, key)
        for name, value in params.items():
            text = text.replace("{" + name + "}", str(value))
        return text

    return t


def language(request: Request) -> str:
    """The cookie's language, else the browser's first choice of ours, else English."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    accept = request.headers.get("accept-language", "").lower()
    return "zh" if accept.startswith("zh") else "en"


def duration(seconds: float | None, t: Any) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 120:
        return t("unit.seconds", n=seconds)
    if seconds < 7200:
        return t("unit.minutes", n=seconds // 60)
    if seconds < 172800:
        return t("unit.hours", n=seconds // 3600)
    return t("unit.days", n=seconds // 86400)


def worked(seconds: int | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}"


def size(num: int | None) -> str:
    if num is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024:
            return f"{num:.0f} {unit}"
        num /= 1024
    return f"{num:.1f} TiB"


@functools.cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(worked=worked, size=size, short=lambda v, n=12: (v or "–")[:n])
    # The consent text is shown in both languages, whatever the console's: the person reads their own.
    env.globals.update(t_in=lambda lang, key: translator(lang)(key), consent_version=CONSENT_VERSION,
                       signals=SIGNALS)  # a field punch's fraud signals, shown from its hub flags
    return env


def local_formatter(request: Request) -> Any:
    """``local(ts_utc, branch)`` for templates: a UTC timestamp as the branch's local date and time."""
    zones: list[Zones] = []

    def local(ts_utc: str | None, branch: str) -> str:
        if not ts_utc:
            return "–"
        if not zones:
            hub = request.app.state.hub
            zones.append(load_zones(hub.db, hub.tz))
        return zones[0].local(ts_utc, branch).strftime("%Y-%m-%d %H:%M")

    return local


def page(request: Request, template: str, who: Principal | None, http_status: int = 200,
         **context: Any) -> HTMLResponse:
    """One page in the caller's language."""
    lang = language(request)
    t = translator(lang)
    body = environment().get_template(template).render(
        t=t, lang=lang, who=who, path=request.url.path, query=str(request.url.query),
        age=lambda s: duration(s, t), local=local_formatter(request), **context)
    return HTMLResponse(body, status_code=http_status, headers=SECURITY_HEADERS)


def fragment(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """A piece of a page (for the console's light JS to put in place) in the caller's language."""
    t = translator(language(request))
    body = environment().get_template(template).render(t=t, **context)
    return HTMLResponse(body, status_code=http_status, headers=SECURITY_HEADERS)
