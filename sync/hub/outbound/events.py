"""Events the hub emits, written in the same transaction as the fact they report, one delivery row per subscriber.

Each event is stored once (``outbound_events``) with its CloudEvents attributes; each active
subscription whose types match gets a ``pending`` row in ``outbound_deliveries``. With no
subscriber nothing is stored: the pull API (``GET /v1/hr/punches``) keeps the whole history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kiosk.base.timeutil import iso_utc, utc_now, uuid7
from sync.hub.db.base import Tx

log = logging.getLogger(__name__)

PUNCH_CREATED = "attendance.punch.created"
FIRST_PUNCH = "attendance.employee.first_punch"
ENROLLED = "attendance.employee.enrolled"
DEVICE_OFFLINE = "attendance.device.offline"
DEVICE_ONLINE = "attendance.device.online"
CHAIN_ISSUE = "attendance.chain.issue"
EVENT_TYPES = (PUNCH_CREATED, FIRST_PUNCH, ENROLLED, DEVICE_OFFLINE, DEVICE_ONLINE, CHAIN_ISSUE)
TEST_EVENT = "attendance.webhook.test"
HUB_SOURCE = "/hub"


@dataclass(frozen=True)
class Event:
    """One CloudEvent before it is stored; ``order_key`` keeps one employee's (or device's) events in order."""

    type: str
    subject: str
    data: dict[str, Any]
    source: str = HUB_SOURCE
    id: str = field(default_factory=lambda: str(uuid7()))
    time_utc: str = field(default_factory=lambda: iso_utc(utc_now()))

    @property
    def order_key(self) -> str:
        return self.subject


def device_source(device_id: str) -> str:
    return f"/devices/{device_id}"


def device_subject(device_id: str) -> str:
    """Subject (and order key) of a device's events: never equal to an employee id, which has no ':'."""
    return f"device:{device_id}"


def cloud_event(row: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode JSON object of a stored event."""
    return {"specversion": "1.0", "id": row["id"], "source": row["source"], "type": row["type"],
            "subject": row["subject"], "time": row["time_utc"], "datacontenttype": "application/json",
            "data": json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]}


def body_of(row: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for an event: the same on every retry."""
    return json.dumps(cloud_event(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _subscribers(tx: Tx) -> list[tuple[str, set[str]]]:
    rows = tx.rows("SELECT id, event_types FROM outbound_subscriptions WHERE removed_utc IS NULL ORDER BY id")
    return [(r["id"], set(json.loads(r["event_types"]))) for r in rows]


def emit(tx: Tx, events: Sequence[Event]) -> int:
    """Queue ``events`` (in this order) for every subscriber that wants them; returns delivery rows made."""
    if not events:
        return 0
    subscribers = _subscribers(tx)
    wanted = [(e, [sid for sid, types in subscribers if e.type in types]) for e in events]
    wanted = [(e, subs) for e, subs in wanted if subs]
    if not wanted:
        return 0
    tx.many("INSERT INTO outbound_events (id, type, source, subject, time_utc, data) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            [(e.id, e.type, e.source, e.subject, e.time_utc, json.dumps(e.data, sort_keys=True)) for e, _ in wanted])
    now = iso_utc(utc_now())
    rows = [(sid, e.id, e.order_key, now, now) for e, subs in wanted for sid in subs]
    tx.many("INSERT INTO outbound_deliveries (subscription_id, event_id, order_key, status, next_attempt_utc, "
            "created_utc) VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (subscription_id, event_id) DO NOTHING", rows)
    return len(rows)


# -- the events, each built in one place ------------------------------------------------


def punch_events(tx: Tx, punches: Sequence[dict[str, Any]]) -> list[Event]:
    """``punch.created`` for each new punch or HR correction (hub order), plus ``employee.first_punch`` for an
    employee's first real punch ever at this hub — recorded in ``first_punches`` so it is emitted once,
    whatever races (a correction made by HR is not a first punch)."""
    where, params = tx.in_list("employee_id", sorted({p["employee_id"] for p in punches}))
    known = {r["employee_id"] for r in tx.rows(f"SELECT employee_id FROM first_punches WHERE {where}", params)}
    events: list[Event] = []
    for punch in punches:
        source = device_source(punch["device_id"])
        events.append(Event(PUNCH_CREATED, punch["employee_id"], punch, source, id=punch["id"],
                            time_utc=punch["ts_utc"]))
        if punch["employee_id"] in known or punch.get("kind") == "correction":
            continue
        known.add(punch["employee_id"])
        if tx.run("INSERT INTO first_punches (employee_id, punch_id, hub_seq) VALUES (?, ?, ?) "
                  "ON CONFLICT (employee_id) DO NOTHING", [punch["employee_id"], punch["id"], punch["hub_seq"]]):
            data = {"employee_id": punch["employee_id"], "punch_id": punch["id"], "ts_utc": punch["ts_utc"],
                    "device_id": punch["device_id"], "branch": punch["branch"], "method": punch["method"]}
            events.append(Event(FIRST_PUNCH, punch["employee_id"], data, source, time_utc=punch["ts_utc"]))
    return events


def chain_issue_event(device_id: str, kind: str, seq_from: int | None, seq_to: int | None, detail: str) -> Event:
    data = {"device_id": device_id, "kind": kind, "seq_from": seq_from, "seq_to": seq_to, "detail": detail}
    return Event(CHAIN_ISSUE, device_subject(device_id), data, device_source(device_id))


def device_state_event(online: bool, device: dict[str, Any], now: str) -> Event:
    data = {"device_id": device["id"], "branch": device["branch"], "last_heartbeat_utc": device.get("heartbeat_utc"),
            "since_utc": now}
    return Event(DEVICE_ONLINE if online else DEVICE_OFFLINE, device_subject(device["id"]), data,
                 device_source(device["id"]), time_utc=now)


def enrolled_event(employee_id: str, branch: str, device_id: str, model_id: str | None, templates: int) -> Event:
    data = {"employee_id": employee_id, "branch": branch, "device_id": device_id, "model_id": model_id,
            "templates": templates}
    return Event(ENROLLED, employee_id, data, device_source(device_id))


def enrolment_events(tx: Tx, device: dict[str, Any], old_cursor: int, new_cursor: int, now: str) -> list[Event]:
    """``employee.enrolled`` once per (employee, branch): the first time a kiosk of the branch reports (by its
    roster cursor) that it has applied a version of the employee carrying templates of its model."""
    if new_cursor <= old_cursor or not device.get("model_id"):
        return []
    rows = tx.rows("SELECT b.employee_id, count(t.id) AS n FROM employee_branches b "
                   "JOIN employees e ON e.id = b.employee_id AND e.active = 1 "
                   "JOIN templates t ON t.employee_id = b.employee_id AND t.model_id = ? "
                   "WHERE b.branch = ? AND b.active = 1 AND b.change_seq > ? AND b.change_seq <= ? "
                   "AND NOT EXISTS (SELECT 1 FROM enrolment_notices n WHERE n.employee_id = b.employee_id "
                   "AND n.branch = b.branch) GROUP BY b.employee_id ORDER BY b.employee_id",
                   [device["model_id"], device["branch"], old_cursor, new_cursor])
    events = []
    for row in rows:
        if tx.run("INSERT INTO enrolment_notices (employee_id, branch, device_id, noticed_utc) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (employee_id, branch) DO NOTHING",
                  [row["employee_id"], device["branch"], device["id"], now]):
            events.append(enrolled_event(row["employee_id"], device["branch"], device["id"], device["model_id"],
                                         int(row["n"])))
    return events
