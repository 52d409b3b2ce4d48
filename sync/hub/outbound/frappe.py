"""Frappe HRMS / ERPNext connector: punches -> Employee Checkin, Last Sync of Checkin, Employees -> hub.

Written against Frappe HRMS's public source: ``add_log_based_on_employee_field`` in
hrms/hr/doctype/employee_checkin/employee_checkin.py (a duplicate is a ValidationError "This
employee already has a log with the same timestamp", an unknown employee "No Employee found for
the given employee field value", an inactive one InactiveEmployeeStatusError), ``ShiftType.
process_auto_attendance`` in hrms/hr/doctype/shift_type/shift_type.py (only checkins of shifts that
ended before ``last_sync_of_checkin`` are processed) and Frappe's REST API (``/api/resource``,
``Authorization: token KEY:SECRET``, errors as JSON with ``exc_type`` and ``_server_messages``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from kiosk.base.errors import Conflict, KioskError, NotFound
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from sync.hub import export, people
from sync.hub.db.base import HubDb
from sync.hub.faces import TemplateMaker
from sync.hub.outbound import queue
from sync.hub.outbound.config import FrappeConfig
from sync.hub.outbound.events import PUNCH_CREATED
from sync.hub.outbound.queue import Subscription
from sync.hub.outbound.webhooks import DELIVERED, Outcome, retry_after, transport_error
from sync.protocol import EMPLOYEE_ID, ConsentIn, EmployeeIn, EmployeePatch

log = logging.getLogger(__name__)

SUBSCRIPTION_ID = "frappe"
ACTOR = "frappe"  # who the audit trail names for hires, changes and new photos from the HRMS
FRAPPE_TIME = "%Y-%m-%d %H:%M:%S"
EMPLOYEE_CURSOR_KEY = "frappe.employee_cursor"
RELIEVING_CHECKED_KEY = "frappe.relieving_checked"
LAST_SYNC_KEY = "frappe.last_sync_of_checkin"
EPOCH = "1970-01-01 00:00:00"
DUPLICATE = "already has a log with the same timestamp"
UNKNOWN_EMPLOYEE = "No Employee found"


def frappe_message(resp: httpx.Response) -> str:
    """The human message of a Frappe error answer (its _server_messages, else exception), without HTML."""
    try:
        body = resp.json()
    except ValueError:
        return " ".join(resp.text[:200].split())
    text = ""
    if isinstance(body, dict) and body.get("_server_messages"):
        try:
            first = json.loads(json.loads(body["_server_messages"])[0])
            text = first.get("message", "") if isinstance(first, dict) else str(first)
        except (ValueError, IndexError, TypeError):
            text = str(body["_server_messages"])
    elif isinstance(body, dict):
        text = str(body.get("exception") or body.get("exc_type") or body.get("message") or "")
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())[:300]


def exc_type(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    return str(body.get("exc_type", "")) if isinstance(body, dict) else ""


def log_type_of(punch: dict[str, Any]) -> str:
    """IN / OUT from the punch's direction; '' when it has none (Frappe then pairs check-ins by alternation)."""
    direction = str(punch.get("direction") or "").upper()
    return direction if direction in ("IN", "OUT") else ""


def local_naive(moment: datetime, zone: str) -> str:
    """Frappe stores naive datetimes in the site's time zone: convert explicitly, drop the zone."""
    return moment.astimezone(ZoneInfo(zone)).strftime(FRAPPE_TIME)


class FrappeClient:
    """The few Frappe calls the connector makes, with the API key and secret."""

    def __init__(self, config: FrappeConfig, timeout_s: float, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.http = httpx.Client(base_url=config.url.rstrip("/"), timeout=timeout_s, transport=transport,
                                 headers={"Authorization": f"token {config.token()}", "Accept": "application/json"})
        self.checkin_path = (f"/api/method/{config.method_prefix}.hr.doctype.employee_checkin.employee_checkin."
                             "add_log_based_on_employee_field")

    def add_checkin(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.checkin_path, json=body)

    def set_last_sync(self, shift_type: str, value: str) -> httpx.Response:
        return self.http.put(f"/api/resource/Shift Type/{quote(shift_type, safe='')}",
                             json={"last_sync_of_checkin": value})

    def employees(self, filters: list[list[Any]], start: int, size: int) -> list[dict[str, Any]]:
        fields = ["name", "employee_name", "status", "branch", "relieving_date", "image", "date_of_joining",
                  "modified"]
        fields += [f for f in (self.config.employee_field, self.config.consent_field) if f not in fields]
        resp = self.http.get("/api/resource/Employee", params={
            "fields": json.dumps(fields), "filters": json.dumps(filters), "order_by": "modified asc, name asc",
            "limit_start": start, "limit_page_length": size})
        if resp.status_code != 200:
            raise KioskError(f"Frappe answered HTTP {resp.status_code} to the Employee list: {frappe_message(resp)}",
                             fix="Check connectors.frappe.url and that the API user may read Employees.")
        return resp.json().get("data", [])

    def file(self, path: str) -> bytes:
        resp = self.http.get(path if path.startswith("/") else "/" + path)
        if resp.status_code != 200:
            raise KioskError(f"Frappe answered HTTP {resp.status_code} for a photo")
        return resp.content

    def close(self) -> None:
        self.http.close()


def checkin_outcome(resp: httpx.Response, employee_id: str, field: str) -> Outcome:
    """What Frappe's answer means for this punch."""
    if resp.status_code == 200:
        return DELIVERED
    message = frappe_message(resp)
    if "Failed to get method" in message or resp.status_code == 404:
        return Outcome("retry", "HRMS has no add_log_based_on_employee_field at this path: check "
                       "connectors.frappe.method_prefix (hrms for v14+, erpnext for v13)")
    if resp.status_code == 417 or exc_type(resp).endswith("ValidationError") or "Inactive" in exc_type(resp):
        if DUPLICATE in message:
            return DELIVERED  # Frappe keeps one log per employee, time and log type: ours is there
        if UNKNOWN_EMPLOYEE in message:
            return Outcome("park", f"no Employee in the HRMS has {field} = {employee_id}")
        if "Inactive" in exc_type(resp) or "Inactive Employee" in message:
            return Outcome("park", f"employee {employee_id} is Inactive in the HRMS")
        return Outcome("park", f"HRMS refused the checkin: {message}")
    if resp.status_code in (401, 403):
        return Outcome("retry", f"HRMS refused the API key (HTTP {resp.status_code}): {message}; check the "
                       "connector's token and the API user's roles")
    return Outcome("retry", f"HTTP {resp.status_code}: {message}", retry_after(resp))


class FrappeSender:
    """Delivers ``attendance.punch.created`` events as Employee Checkins."""

    kind = "frappe"

    def __init__(self, config: FrappeConfig, db: HubDb, client: FrappeClient, timeout_s: float) -> None:
        self.config = config
        self.db = db
        self.client = client
        self.timeout_s = timeout_s
        self.shifts = ShiftSync(config, db, client)

    def checkin_body(self, punch: dict[str, Any]) -> dict[str, Any]:
        moment = parse_iso(punch.get("corrected_ts_utc") or punch["ts_utc"])
        body: dict[str, Any] = {"employee_field_value": punch["employee_id"],
                                "timestamp": local_naive(moment, self.config.time_zone),
                                "device_id": punch["device_id"], "log_type": log_type_of(punch),
                                "employee_fieldname": self.config.employee_field}
        if punch.get("lat") is not None and punch.get("lon") is not None:
            body.update(latitude=punch["lat"], longitude=punch["lon"])
        if punch.get("kind") == "correction" and self.config.skip_auto_attendance_for_corrections:
            body["skip_auto_attendance"] = 1
        return body

    def _with_true_time(self, punch: dict[str, Any]) -> dict[str, Any]:
        """An unverified punch's time corrected from the kiosk's clock anchors, when the hub has one."""
        if punch.get("clock_state") == "verified":
            return punch
        row = dict(punch)
        with self.db.transaction(write=False) as tx:
            export.corrected_times(tx, [row])
        return row

    def deliver(self, sub: Subscription, event: dict[str, Any]) -> Outcome:
        if event["type"] != PUNCH_CREATED:
            return DELIVERED  # the connector only carries punches
        punch = self._with_true_time(json.loads(event["data"]) if isinstance(event["data"], str) else event["data"])
        try:
            resp = self.client.add_checkin(self.checkin_body(punch))
        except httpx.HTTPError as exc:
            return transport_error(exc, self.timeout_s)
        return checkin_outcome(resp, punch["employee_id"], self.config.employee_field)

    def after_round(self, sub: Subscription, delivered: list[dict[str, Any]]) -> None:
        self.shifts.advance()

    def close(self) -> None:
        self.client.close()


class ShiftSync:
    """Advances 'Last Sync of Checkin' on the configured Shift Types to the time up to which every mapped
    kiosk is known complete (its last heartbeat with an empty backlog) and every punch is in the HRMS."""

    name = "frappe-shift-sync"

    def __init__(self, config: FrappeConfig, db: HubDb, client: FrappeClient) -> None:
        self.config = config
        self.db = db
        self.client = client
        self.every_s = config.shift_sync_interval_s

    def watermark(self) -> datetime | None:
        branches = set(self.config.branch_map.values())
        with self.db.transaction(write=False) as tx:
            rows = [r for r in tx.rows("SELECT branch, complete_utc FROM devices WHERE status = 'active'")
                    if not branches or r["branch"] in branches]
            oldest = tx.row("SELECT min(e.time_utc) AS t FROM outbound_deliveries d JOIN outbound_events e "
                            "ON e.id = d.event_id WHERE d.subscription_id = ? AND d.status = 'pending'",
                            [SUBSCRIPTION_ID])["t"]
        if not rows or any(r["complete_utc"] is None for r in rows):
            return None
        mark = parse_iso(min(r["complete_utc"] for r in rows))
        if oldest is not None:
            mark = min(mark, parse_iso(oldest) - timedelta(seconds=1))
        return mark

    def advance(self) -> str | None:
        """PUT the new value on every Shift Type when it moved forward; returns it (None: nothing to do)."""
        mark = self.watermark()
        if mark is None or not self.config.shift_types:
            return None
        value = local_naive(mark, self.config.time_zone)
        if value <= (queue.get_meta(self.db, LAST_SYNC_KEY) or EPOCH):
            return None
        for shift in self.config.shift_types:
            resp = self.client.set_last_sync(shift, value)
            if resp.status_code != 200:
                log.warning("Shift Type %s: Last Sync of Checkin not updated (HTTP %d: %s); retried later",
                            shift, resp.status_code, frappe_message(resp))
                return None
        queue.set_meta(self.db, LAST_SYNC_KEY, value)
        log.info("Last Sync of Checkin of %d shift type(s) is now %s", len(self.config.shift_types), value)
        return value

    def run(self, now: datetime) -> None:
        self.advance()


class EmployeePoll:
    """Employees -> hub: Active with a photo in a mapped branch -> new hire; Left or relieved -> terminated."""

    name = "frappe-employees"

    def __init__(self, config: FrappeConfig, db: HubDb, client: FrappeClient, maker: TemplateMaker,
                 max_photo_bytes: int) -> None:
        self.config = config
        self.db = db
        self.client = client
        self.maker = maker
        self.max_photo_bytes = max_photo_bytes
        self.every_s = config.employee_poll_interval_s

    def run(self, now: datetime) -> None:
        today = now.astimezone(ZoneInfo(self.config.time_zone)).date().isoformat()
        cursor = queue.get_meta(self.db, EMPLOYEE_CURSOR_KEY) or EPOCH
        newest = self._walk([["modified", ">", cursor]], cursor, today)
        if newest != cursor:
            queue.set_meta(self.db, EMPLOYEE_CURSOR_KEY, newest)
        # A relieving date that passes later changes no record: look for those once a day.
        checked = queue.get_meta(self.db, RELIEVING_CHECKED_KEY) or "1970-01-01"
        if checked < today:
            self._walk([["relieving_date", ">", checked], ["relieving_date", "<=", today]], "", today)
            queue.set_meta(self.db, RELIEVING_CHECKED_KEY, today)

    def _walk(self, filters: list[list[Any]], cursor: str, today: str) -> str:
        """Apply every matching Employee; returns the newest 'modified' before the first that must be retried."""
        start, newest, stuck = 0, cursor, False
        while True:
            page = self.client.employees(filters, start, self.config.page_size)
            for record in page:
                stuck = not self._apply_safely(record, today) or stuck
                if not stuck:
                    newest = max(newest, str(record.get("modified") or ""))
            if len(page) < self.config.page_size:
                return newest
            start += len(page)

    def _apply_safely(self, record: dict[str, Any], today: str) -> bool:
        try:
            return self.apply(record, today)
        except (KioskError, httpx.HTTPError) as exc:
            log.warning("Employee %s not applied (%s); retried at the next poll", record.get("name"),
                        getattr(exc, "what", type(exc).__name__))
            return False

    def hub_id(self, record: dict[str, Any]) -> str | None:
        value = str(record.get(self.config.employee_field) or "").strip()
        return value if re.match(EMPLOYEE_ID, value) else None

    def apply(self, record: dict[str, Any], today: str) -> bool:
        """Bring the hub in line with one Employee; False when it must be retried (e.g. the photo failed)."""
        employee_id = self.hub_id(record)
        if employee_id is None:
            log.info("Employee %s has no usable %s: left alone", record.get("name"), self.config.employee_field)
            return True
        relieved = bool(record.get("relieving_date")) and str(record["relieving_date"]) <= today
        current = self._current(employee_id)
        if record.get("status") == "Left" or relieved:
            if current is not None and current.active:
                people.terminate_employee(self.db, employee_id, "left (Frappe HRMS)")
            return True
        branch = self.config.branch_map.get(str(record.get("branch") or ""))
        if branch is None or record.get("status") != "Active":
            return True
        if current is not None and current.active:
            if branch not in current.branches or current.name != record.get("employee_name"):
                people.patch_employee(self.db, employee_id, EmployeePatch(
                    name=record.get("employee_name") or current.name, branches=sorted({*current.branches, branch})),
                    people.Templates([], 0, [], []), ACTOR)
            return self._refresh_photo(employee_id, record)
        return self._hire(employee_id, branch, record)

    def _current(self, employee_id: str) -> Any:
        try:
            return people.get_employee(self.db, employee_id)
        except NotFound:
            return None

    def _templates(self, record: dict[str, Any], photo: bytes) -> people.Templates | None:
        """Templates from the Employee's photo (the hire path's rule), or None when it gives none."""
        made = people.prepare_templates([base64.b64encode(photo).decode("ascii")], [], self.maker,
                                        people.known_models(self.db, self.maker), self.max_photo_bytes)
        if not made.ready:
            reasons = "; ".join(p.reason for p in made.problems) or "no face model"
            log.warning("Employee %s: photo gave no template (%s); fix the photo in the HRMS", record.get("name"),
                        reasons)
            return None
        return made

    def _consent(self, record: dict[str, Any]) -> ConsentIn | None:
        """The person's consent to face recognition as the HRMS records it (a date), or None."""
        value = str(record.get(self.config.consent_field) or "").strip()
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
            return None
        return ConsentIn(given_utc=f"{value}T00:00:00.000Z", taken_by=ACTOR)

    def _hire(self, employee_id: str, branch: str, record: dict[str, Any]) -> bool:
        if not record.get("image"):
            log.info("Employee %s has no photo yet: hired once it has one", record.get("name"))
            return True
        emp = EmployeeIn(employee_id=employee_id, name=str(record.get("employee_name") or employee_id),
                         branches=[branch], consent=self._consent(record))
        if emp.consent is None:
            # No consent, no template: card-only until the HRMS records the consent (then _refresh_photo).
            log.info("Employee %s: no %s, hired card-only", record.get("name"), self.config.consent_field)
            try:
                people.create_employee(self.db, emp, people.Templates([], 0, [], []), ACTOR, "hr_connector")
            except Conflict:
                pass  # hired meanwhile by another worker or by HR through the API
            return True
        image = str(record["image"])
        photo = self.client.file(image)
        made = self._templates(record, photo)
        if made is None:
            return True
        try:
            people.create_employee(self.db, emp, made, ACTOR, "hr_connector")
        except Conflict:
            return True  # hired meanwhile by another worker or by HR through the API
        remember_photo(self.db, employee_id, image, photo)
        log.info("Employee %s hired from the HRMS as %s (%s), %d template(s)", record.get("name"), employee_id,
                 branch, len(made.ready))
        return True

    def _refresh_photo(self, employee_id: str, record: dict[str, Any]) -> bool:
        """A changed Employee photo replaces the hub's templates (kiosks get them on their next sync).

        The image URL last used is kept; only a new URL is fetched, and a photo with the same bytes as
        before (same SHA-256) changes nothing. A photo that gives no template keeps the old templates."""
        image = str(record.get("image") or "")
        consent = self._consent(record)
        if not image or consent is None:
            return True
        last = used_photo(self.db, employee_id)
        if last is not None and last["image"] == image:
            return True
        photo = self.client.file(image)
        if last is not None and last["sha256"] == hashlib.sha256(photo).hexdigest():
            remember_photo(self.db, employee_id, image, photo)
            return True
        made = self._templates(record, photo)
        if made is not None:
            people.patch_employee(self.db, employee_id, EmployeePatch(replace_templates=True, consent=consent), made,
                                  ACTOR, "hr_connector")
            log.info("Employee %s: new photo in the HRMS, %s's templates replaced (%d)", record.get("name"),
                     employee_id, len(made.ready))
        remember_photo(self.db, employee_id, image, photo)
        return True


def used_photo(db: HubDb, employee_id: str) -> dict[str, Any] | None:
    """The Employee image (and its photo's SHA-256) the employee's templates were last made from."""
    with db.transaction(write=False) as tx:
        return tx.row("SELECT image, sha256 FROM connector_photos WHERE connector = 'frappe' AND employee_id = ?",
                      [employee_id])


def remember_photo(db: HubDb, employee_id: str, image: str, photo: bytes) -> None:
    with db.transaction() as tx:
        tx.run("INSERT INTO connector_photos (connector, employee_id, image, sha256, updated_utc) "
               "VALUES ('frappe', ?, ?, ?, ?) ON CONFLICT (connector, employee_id) DO UPDATE SET "
               "image = excluded.image, sha256 = excluded.sha256, updated_utc = excluded.updated_utc",
               [employee_id, image, hashlib.sha256(photo).hexdigest(), iso_utc(utc_now())])


def ensure_subscription(db: HubDb, config: FrappeConfig) -> None:
    """The connector's queue: every punch, in order per employee, like a webhook subscription."""
    queue.add_subscription(db, "frappe", config.url, [PUNCH_CREATED], "Frappe HRMS connector",
                           sub_id=SUBSCRIPTION_ID)

