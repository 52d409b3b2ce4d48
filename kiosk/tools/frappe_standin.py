"""A local stand-in for a Frappe HRMS site, for the connector's tests and benchmark (never for production).

It implements, from Frappe's public source, just what the connector calls:
- ``add_log_based_on_employee_field`` (hrms/hr/doctype/employee_checkin/employee_checkin.py, under the
  ``hrms.`` path, or ``erpnext.`` for a v13 site): required fields, employee lookup by
  ``employee_fieldname``, ``validate_active_employee`` (hrms/hr/utils.py: only status 'Inactive' is
  refused), time truncated to the second (``before_validate``), the duplicate rule (same employee, time
  and log type), "Log Type is required" for a shift 'Strictly based on Log Type';
- ``/api/resource/Employee`` lists (fields, filters, order_by, limit_start / limit_page_length, default
  page 20) and ``PUT /api/resource/Shift Type/NAME`` (frappe/api.py);
- token auth (``Authorization: token KEY:SECRET``, 401 AuthenticationError otherwise), errors as Frappe's
  JSON (frappe/utils/response.py: ``exc_type``, ``exception``, ``exc``, ``_server_messages``), with HTTP
  417 for a ValidationError (frappe/exceptions.py), 404 for DoesNotExistError, a wrong method path
  answered "Failed to get method for command ..." (frappe/handler.py ``execute_cmd``), and files.
Switches make it misbehave on purpose: answer 500 or stall for the next N calls.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CHECKIN_METHOD = "hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field"
DEFAULT_PAGE = 20


class FrappeError(Exception):
    """A frappe.throw: status, exc_type and message as Frappe would answer them."""

    def __init__(self, status: int, exc_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.exc_type, self.message = status, exc_type, message


def validation(message: str, exc_type: str = "ValidationError") -> FrappeError:
    return FrappeError(417, exc_type, message)


def error_body(err: FrappeError) -> dict[str, Any]:
    message = {"message": err.message, "title": "Message", "indicator": "red", "raise_exception": 1}
    return {"exc_type": err.exc_type, "exception": f"frappe.exceptions.{err.exc_type}: {err.message}",
            "exc": json.dumps([f"Traceback (most recent call last):\n  ...\nfrappe.exceptions.{err.exc_type}"]),
            "_server_messages": json.dumps([json.dumps(message)])}


@dataclass
class FrappeSite:
    """The site's data and its switches."""

    api_key: str = "kioskhub"
    api_secret: str = "s3cret"
    prefix: str = "hrms"
    employees: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkins: list[dict[str, Any]] = field(default_factory=list)
    shift_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    strict_log_type_shift: str | None = None
    fail_next: list[int] = field(default_factory=list)
    stall_next: list[float] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def add_employee(self, name: str, **values: Any) -> dict[str, Any]:
        record = {"name": name, "employee_name": name, "status": "Active", "branch": None, "relieving_date": None,
                  "image": None, "date_of_joining": "2025-01-01", "attendance_device_id": None, **values,
                  "modified": now_text()}
        with self.lock:
            self.employees[name] = record
        time.sleep(0.000002)  # distinct 'modified' values, as Frappe's microsecond clock gives
        return record

    def change_employee(self, name: str, **values: Any) -> None:
        with self.lock:
            self.employees[name].update(values, modified=now_text())

    # -- the whitelisted method ------------------------------------------------------------

    def add_log(self, args: dict[str, Any]) -> dict[str, Any]:
        value, stamp = args.get("employee_field_value"), args.get("timestamp")
        if not value or not stamp:
            raise validation("'employee_field_value' and 'timestamp' are required.")
        fieldname = args.get("employee_fieldname") or "attendance_device_id"
        with self.lock:
            found = [e for e in self.employees.values() if str(e.get(fieldname)) == str(value)]
            if not found:
                raise validation(f"No Employee found for the given employee field value. '{fieldname}': {value}")
            employee = found[0]
            when = datetime.fromisoformat(str(stamp)).replace(microsecond=0)
            if employee["status"] == "Inactive":
                raise validation(f"Transactions cannot be created for an Inactive Employee "
                                 f"<a href=\"/app/employee/{employee['name']}\">{employee['name']}</a>.",
                                 "InactiveEmployeeStatusError")
            log_type = args.get("log_type") or None
            dup = next((c for c in self.checkins if c["employee"] == employee["name"] and c["time"] == when
                        and c["log_type"] == log_type), None)
            if dup:
                raise validation("This employee already has a log with the same timestamp.<Br>"
                                 f"<a href=\"/app/employee-checkin/{dup['name']}\">{dup['name']}</a>")
            skip = int(args.get("skip_auto_attendance") or 0) == 1
            if self.strict_log_type_shift and not log_type and not skip:
                raise validation(f"Log Type is required for check-ins falling in the shift: "
                                 f"{self.strict_log_type_shift}.")
            doc = {"name": f"EMP-CKIN-{when:%m}-{when:%Y}-{len(self.checkins) + 1:06d}", "employee": employee["name"],
                   "employee_name": employee["employee_name"], "time": when, "device_id": args.get("device_id"),
                   "log_type": log_type, "latitude": args.get("latitude"), "longitude": args.get("longitude"),
                   "skip_auto_attendance": int(skip), "received_monotonic": time.monotonic()}
            self.checkins.append(doc)
        return {"message": {k: (str(v) if isinstance(v, datetime) else v) for k, v in doc.items()
                            if k != "received_monotonic"}}

    # -- REST resources --------------------------------------------------------------------

    def list_employees(self, query: dict[str, list[str]]) -> dict[str, Any]:
        fields = json.loads(query.get("fields", ['["name"]'])[0])
        filters = json.loads(query.get("filters", ["[]"])[0])
        start = int(query.get("limit_start", ["0"])[0])
        size = int(query.get("limit_page_length", query.get("limit", [str(DEFAULT_PAGE)]))[0])
        with self.lock:
            rows = [e for e in self.employees.values() if all(_matches(e, f) for f in filters)]
        rows.sort(key=lambda e: (e["modified"], e["name"]))
        return {"data": [{k: e.get(k) for k in fields} for e in rows[start:start + size]]}

    def put_shift_type(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if name not in self.shift_types:
                raise FrappeError(404, "DoesNotExistError", f"Shift Type {name} not found")
            self.shift_types[name].update(body)
            return {"data": {"name": name, **self.shift_types[name]}}


def now_text() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")


def _matches(record: dict[str, Any], condition: list[Any]) -> bool:
    fieldname, op, value = condition[0], condition[1], condition[2]
    have = record.get(fieldname)
    if have is None:
        return False  # SQL comparisons with NULL are never true
    have, value = str(have), str(value)
    return {">": have > value, ">=": have >= value, "<": have < value, "<=": have <= value,
            "=": have == value, "!=": have != value}[op]


class FrappeStandIn:
    """The site on 127.0.0.1 (a free port), served from threads of this process."""

    def __init__(self, site: FrappeSite | None = None) -> None:
        self.site = site or FrappeSite()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.site))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FrappeStandIn:
        threading.Thread(target=self.server.serve_forever, name="frappe-standin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(site: FrappeSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with site.lock:
                site.calls.append(f"{method} {path}")
                fail = site.fail_next.pop(0) if site.fail_next else None
                stall = site.stall_next.pop(0) if site.stall_next else 0.0
            if stall:
                time.sleep(stall)
            try:
                if fail:
                    raise FrappeError(fail, "Exception", "Internal Server Error")
                self._authorise(path)
                if path.startswith(("/files/", "/private/files/")):
                    return self._file(path)
                status, body = 200, self._route(method, path, parse_qs(parts.query), raw)
            except FrappeError as err:
                status, body = err.status, error_body(err)
            self._send(status, json.dumps(body, default=str).encode(), "application/json")

        def _authorise(self, path: str) -> None:
            if path.startswith("/files/"):
                return
            if self.headers.get("authorization") != f"token {site.api_key}:{site.api_secret}":
                raise FrappeError(401, "AuthenticationError", "Authentication failed: invalid API key or secret")

        def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> dict[str, Any]:
            if method == "POST" and path.startswith("/api/method/"):
                cmd = path.removeprefix("/api/method/")
                if cmd != f"{site.prefix}.{CHECKIN_METHOD}":
                    raise validation(f"Failed to get method for command {cmd} with No module named "
                                     f"'{cmd.split('.')[0]}'")
                return site.add_log(json.loads(raw or b"{}"))
            if method == "GET" and path == "/api/resource/Employee":
                return site.list_employees(query)
            if method == "PUT" and path.startswith("/api/resource/Shift Type/"):
                return site.put_shift_type(path.removeprefix("/api/resource/Shift Type/"), json.loads(raw or b"{}"))
            raise FrappeError(404, "DoesNotExistError", f"{method} {path} not found")

        def _file(self, path: str) -> None:
            data = site.files.get(path)
            if data is None:
                raise FrappeError(404, "DoesNotExistError", "File not found")
            self._send(200, data, "image/jpeg")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
