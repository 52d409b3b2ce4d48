"""The console's forms (POST, each with its CSRF token): sign-in and out, registration codes, revoke, new hire,
edit, terminate, correction, outbox retry and skip, webhook add, remove and test, a field phone's pairing
link, its revocation and an employee's field sites. Each calls the same action as
its HR API twin (sync.hub.hr)."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kiosk.base.consent import CONSENT_VERSION
from kiosk.base.errors import InvalidInput, KioskError
from kiosk.base.timeutil import iso_utc, utc_now
from sync.errors import Forbidden, NeedsConfirmation
from sync.hub import accounts, hr, people
from sync.hub.console.pages import employee_context, outbox_context, phones_context
from sync.hub.console.render import fragment, page
from sync.hub.console.session import (
    PRE_CSRF_COOKIE,
    checked_form,
    current,
    form_list,
    hub_of,
    new_pre_csrf,
    plain_form,
    pre_csrf_ok,
    problem,
)
from sync.hub.field.geofence import parse_site
from sync.hub.field.routes import origin_of
from sync.hub.hrapi import SESSION_COOKIE, set_session_cookie
from sync.protocol import (
    CodeIn,
    ConsentIn,
    CorrectionIn,
    EmployeeIn,
    EmployeePatch,
    OutboxActionIn,
    PhotoCheckIn,
    WebhookIn,
)

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


def _back(path: str, done: str) -> RedirectResponse:
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}done={done}", status_code=303)


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    hub = hub_of(request)
    target = _safe_next(str(form.get("next", "/")))
    try:
        plain_form(form)
        if not pre_csrf_ok(request, str(form.get("csrf", ""))):
            raise Forbidden("the sign-in form expired", fix="Reload the page and sign in again.")
        token, _who = await run_in_threadpool(accounts.sign_in, hub.db, str(form.get("username", "")).strip(),
                                              str(form.get("password", "")), hub.config.console.max_failures,
                                              hub.config.console.lockout_s)
    except KioskError as exc:
        fresh = new_pre_csrf()
        response = page(request, "signin.html", None, http_status=401, pre_csrf=fresh, next=target, error=problem(exc),
                        done=None)
        response.set_cookie(PRE_CSRF_COOKIE, fresh, httponly=True, samesite="strict", path="/signin")
        return response
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(PRE_CSRF_COOKIE, path="/signin")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    who = current(request)
    await checked_form(request, who)
    await run_in_threadpool(accounts.end_session, hub_of(request).db, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/signin?done=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/devices/codes")
async def new_code(request: Request) -> Response:
    who = current(request)
    hub = hub_of(request)
    form = await checked_form(request, who)
    code, error = None, None
    try:
        body = CodeIn(branch=str(form.get("branch", "")).strip(), label=str(form.get("label", "")).strip())
        code = await run_in_threadpool(hr.create_code, hub, who, body)
    except (KioskError, ValidationError) as exc:
        error = problem(exc)
    return page(request, "devices.html", who, http_status=201 if code else 422,
                devices=await run_in_threadpool(hr.list_devices, hub, who, None),
                branches=hr.visible_branches(hub, who), branch="", code=code, error=error, done=None)


@router.post("/devices/{device_id}/revoke")
async def revoke(request: Request, device_id: str) -> Response:
    who = current(request)
    await checked_form(request, who)
    await run_in_threadpool(hr.revoke_device, hub_of(request), who, device_id)
    return _back(f"/devices/{quote(device_id)}", "revoked")


async def _photos(form: Any) -> tuple[list[str], list[str]]:
    """Uploaded photo files as base64 (for the same EmployeeIn the API takes) and their file names."""
    data, names = [], []
    for upload in form.getlist("photos"):
        if not hasattr(upload, "read"):
            continue
        content = await upload.read()
        if content:
            data.append(base64.b64encode(content).decode("ascii"))
            names.append(upload.filename or f"photo {len(names) + 1}")
    return data, names


def verdicts(problems: list[Any], names: list[str], models: int) -> list[dict[str, Any]]:
    """Each uploaded photo (by file name): used, or the reasons it was refused (per model the hub makes)."""
    made = people.Templates([], 0, problems, [])
    return [{"name": name, "ok": v.ok, "reasons": v.reasons}
            for name, v in zip(names, people.photo_verdicts(made, len(names), models), strict=True)]


@router.post("/employees/photos/check")
async def check_photos(request: Request) -> Response:
    """The new-hire form's photo verdicts before saving (its light JS posts the chosen files here): the
    list the employee page shows after a save, as an HTML fragment; nothing is stored."""
    who = current(request)
    hub = hub_of(request)
    form = await checked_form(request, who)
    photos, names = await _photos(form)
    try:
        checked = await run_in_threadpool(hr.check_photos, hub, who, PhotoCheckIn(photos=photos))
    except (KioskError, ValidationError) as exc:
        return fragment(request, "photo_verdicts.html", http_status=422, verdicts=[], error=problem(exc))
    rows = [{"name": name, "ok": v.ok, "reasons": v.reasons} for name, v in zip(names, checked.photos, strict=True)]
    return fragment(request, "photo_verdicts.html", verdicts=rows, error=None)


def _consent(form: Any, who: accounts.Principal) -> ConsentIn | None:  # noqa: ANN401 - a Starlette form
    """The consent box of the photo forms: ticked when HR showed the person the consent text and they agreed."""
    if form.get("consent") != "yes":
        return None
    language = str(form.get("consent_language", "zh"))
    return ConsentIn(given_utc=iso_utc(utc_now()), text_version=CONSENT_VERSION,
                     language=language if language in ("zh", "en") else "zh", taken_by=who.name)


@router.post("/employees/new")
async def new_hire(request: Request) -> Response:
    who = current(request)
    hub = hub_of(request)
    form = await checked_form(request, who)
    photos, names = await _photos(form)
    given = {k: str(form.get(k, "")) for k in ("employee_id", "name", "branches", "cards")}
    try:
        emp = EmployeeIn(employee_id=given["employee_id"].strip(), name=given["name"],
                         branches=form_list(given["branches"]), cards=form_list(given["cards"]), photos=photos,
                         consent=_consent(form, who))
        out = await run_in_threadpool(hr.create_employee, hub, who, emp, "hr_console")
    except (KioskError, ValidationError) as exc:
        return page(request, "new_hire.html", who, http_status=422, branches=hr.visible_branches(hub, who), given=given,
                    error=problem(exc))
    context = await run_in_threadpool(employee_context, request, who, out.employee_id)
    context["verdicts"] = verdicts(out.photos_rejected, names, len(hub.maker.model_ids()))
    return page(request, "employee.html", who, http_status=201, done="done.created", **context)


@router.post("/employees/{employee_id}/edit")
async def edit(request: Request, employee_id: str) -> Response:
    who = current(request)
    hub = hub_of(request)
    form = await checked_form(request, who)
    photos, names = await _photos(form)
    try:
        patch = EmployeePatch(name=str(form.get("name", "")).strip() or None,
                              branches=form_list(form.get("branches")), cards=form_list(form.get("cards")),
                              photos=photos, consent=_consent(form, who))
        out = await run_in_threadpool(hr.patch_employee, hub, who, employee_id, patch, "hr_console")
    except (KioskError, ValidationError) as exc:
        context = await run_in_threadpool(employee_context, request, who, employee_id)
        context["error"] = problem(exc)
        return page(request, "employee.html", who, http_status=422, done=None, **context)
    context = await run_in_threadpool(employee_context, request, who, employee_id)
    context["verdicts"] = verdicts(out.photos_rejected, names, len(hub.maker.model_ids())) if names else None
    return page(request, "employee.html", who, done="done.changed", **context)


@router.post("/employees/{employee_id}/terminate")
async def terminate(request: Request, employee_id: str) -> Response:
    who = current(request)
    form = await checked_form(request, who)
    reason = str(form.get("reason", "")).strip()
    if not reason:
        context = await run_in_threadpool(employee_context, request, who, employee_id)
        context["error"] = {"key": "error.reason_needed", "detail": ""}
        return page(request, "employee.html", who, http_status=422, done=None, **context)
    await run_in_threadpool(hr.terminate_employee, hub_of(request), who, employee_id, reason[:500])
    return _back(f"/employees/{quote(employee_id)}", "terminated")


@router.post("/employees/{employee_id}/device-templates/{action}")
async def device_templates(request: Request, employee_id: str, action: str) -> Response:
    """Approve or drop the faces one kiosk enrolled for this person (the API twin's action)."""
    who = current(request)
    form = await checked_form(request, who)
    if action not in ("approve", "drop"):
        raise InvalidInput(f"unknown action {action!r}", fix="Use approve or drop.")
    device_id = str(form.get("device_id", "")).strip() or None
    await run_in_threadpool(hr.review_device_templates, hub_of(request), who, employee_id, action, device_id)
    return _back(f"/employees/{quote(employee_id)}", "approved" if action == "approve" else "dropped")


@router.post("/attendance/correct")
async def correct(request: Request) -> Response:
    who = current(request)
    hub = hub_of(request)
    form = await checked_form(request, who)
    given = {k: str(form.get(k, "")).strip() for k in ("employee_id", "branch", "local_time", "direction", "reason")}
    try:
        body = CorrectionIn(employee_id=given["employee_id"], branch=given["branch"] or None,
                            local_time=given["local_time"], direction=given["direction"] or None,
                            reason=given["reason"], confirm=form.get("confirm") == "yes")
        row = await run_in_threadpool(hr.add_correction, hub, who, body)
    except (KioskError, ValidationError) as exc:
        return page(request, "correct.html", who, http_status=409 if isinstance(exc, NeedsConfirmation) else 422,
                    given=given, branches=hr.visible_branches(hub, who), error=problem(exc),
                    ask_confirm=isinstance(exc, NeedsConfirmation))
    query = urlencode({"branch": row["branch"], "day": row["local_date"]})
    return _back(f"/attendance?{query}", "corrected")


async def _outbox_page(request: Request, who: Any, status: int, **shown: Any) -> Response:
    context = await run_in_threadpool(outbox_context, request, who)
    context.update(shown)
    return page(request, "outbox.html", who, http_status=status, done=None, **context)


async def _outbox_action(request: Request, action: str) -> Response:
    """Retry or skip records: the ids ticked, or every parked record of one subscription."""
    who = current(request)
    form = await checked_form(request, who)
    try:
        body = OutboxActionIn(ids=[int(i) for i in form.getlist("ids")], all_parked=form.get("all_parked") == "yes",
                              subscription=str(form.get("subscription", "")).strip() or None)
        await run_in_threadpool(hr.outbox_action, hub_of(request), who, action, body)
    except (KioskError, ValidationError, ValueError) as exc:
        return await _outbox_page(request, who, 422, error=problem(exc))
    return _back("/outbox", "retried" if action == "retry" else "skipped")


@router.post("/outbox/retry")
async def outbox_retry(request: Request) -> Response:
    return await _outbox_action(request, "retry")


@router.post("/outbox/skip")
async def outbox_skip(request: Request) -> Response:
    return await _outbox_action(request, "skip")


@router.post("/outbox/webhooks")
async def webhook_add(request: Request) -> Response:
    who = current(request)
    form = await checked_form(request, who)
    try:
        body = WebhookIn(url=str(form.get("url", "")).strip(), event_types=[str(t) for t in form.getlist("types")],
                         description=str(form.get("description", "")).strip())
        added = await run_in_threadpool(hr.webhook_add, hub_of(request), who, body)
    except (KioskError, ValidationError) as exc:
        return await _outbox_page(request, who, 422, error=problem(exc))
    return await _outbox_page(request, who, 201, added=added)


@router.post("/outbox/webhooks/{sub_id}/remove")
async def webhook_remove(request: Request, sub_id: str) -> Response:
    who = current(request)
    await checked_form(request, who)
    await run_in_threadpool(hr.webhook_remove, hub_of(request), who, sub_id)
    return _back("/outbox", "removed")


@router.post("/outbox/webhooks/{sub_id}/test")
async def webhook_test(request: Request, sub_id: str) -> Response:
    who = current(request)
    await checked_form(request, who)
    tested = await run_in_threadpool(hr.webhook_test, hub_of(request), who, sub_id)
    return await _outbox_page(request, who, 200, tested=tested)


async def _phones_page(request: Request, who: Any, status: int, employee: str = "", **shown: Any) -> Response:
    try:
        context = await run_in_threadpool(phones_context, request, who, employee)
    except KioskError:
        context = await run_in_threadpool(phones_context, request, who)
    context.update(shown)
    return page(request, "phones.html", who, http_status=status, done=None, **context)


@router.post("/phones/pair")
async def phone_pair(request: Request) -> Response:
    """A one-time pairing link, shown once (the phone opens it; it is spent by its first use)."""
    who = current(request)
    form = await checked_form(request, who)
    employee_id = str(form.get("employee_id", "")).strip()
    try:
        paired = await run_in_threadpool(hr.field_pair, hub_of(request), who, employee_id,
                                         str(form.get("label", "")).strip(), origin_of(request))
    except KioskError as exc:
        return await _phones_page(request, who, 422, error=problem(exc))
    return await _phones_page(request, who, 201, employee_id, paired=paired)


@router.post("/phones/{device_id}/revoke")
async def phone_revoke(request: Request, device_id: str) -> Response:
    who = current(request)
    await checked_form(request, who)
    await run_in_threadpool(hr.field_revoke, hub_of(request), who, device_id)
    return _back("/phones", "phone_revoked")


@router.post("/phones/sites")
async def phone_sites(request: Request) -> Response:
    """An employee's geofence policy and sites, each NAME:LAT,LON,RADIUS_M (as `kiosk hub field sites --site`)."""
    who = current(request)
    form = await checked_form(request, who)
    employee_id = str(form.get("employee_id", "")).strip()
    try:
        sites = [parse_site(str(line)) for line in form.getlist("site") if str(line).strip()]
        await run_in_threadpool(hr.set_field_sites, hub_of(request), who, employee_id,
                                str(form.get("policy", "")), sites)
    except KioskError as exc:
        return await _phones_page(request, who, 422, employee_id, error=problem(exc))
    return _back(f"/phones?employee={quote(employee_id)}", "sites_saved")
