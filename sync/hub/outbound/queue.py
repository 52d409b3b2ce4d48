"""The delivery queue in the hub database: subscriptions, claiming in order per employee, outcomes, operator actions.

A claim takes the *head* of each (subscription, employee) queue — the oldest pending row with no
older pending row before it — locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, plus the rows
right behind it, and leases them all to one worker. Nobody else can take a later row of that
employee while the head is pending, so each employee's events reach a subscriber in order; other
employees' queues are never held up by it. Parked rows no longer block their queue.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kiosk.base.errors import InvalidInput, NotFound
from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub.db.base import HubDb, Tx
from sync.hub.db.schema import secrets_label
from sync.hub.outbound.events import EVENT_TYPES

log = logging.getLogger(__name__)

STATUSES = ("pending", "delivered", "parked", "skipped")
ERROR_MAX_CHARS = 500
MAX_LIVE_SECRETS = 2


@dataclass(frozen=True)
class Subscription:
    id: str
    kind: str
    url: str
    secrets: list[str]
    event_types: list[str]


@dataclass(frozen=True)
class Claimed:
    """One leased delivery and its event row."""

    delivery_id: int
    subscription_id: str
    order_key: str
    attempts: int
    event: dict[str, Any]


# -- subscriptions ----------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: 'whsec_' + base64 of 24 random bytes."""
    import base64
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def add_subscription(db: HubDb, kind: str, url: str, event_types: list[str], description: str = "",
                     sub_id: str | None = None, secret: str | None = None) -> Subscription:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown or not event_types:
        raise InvalidInput(f"unknown event type(s) {', '.join(unknown) or '(none given)'}",
                           fix=f"Use one or more of: {', '.join(EVENT_TYPES)}.")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"url {url!r} is not an http:// or https:// URL", fix="Give the receiver's full URL.")
    sub = Subscription(sub_id or "wh_" + secrets.token_hex(6), kind, url, [secret or new_secret()],
                       sorted(set(event_types)))
    with db.transaction() as tx:
        tx.run("INSERT INTO outbound_subscriptions (id, kind, url, secrets, event_types, description, created_utc) "
               "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET url = excluded.url, "
               "event_types = excluded.event_types, removed_utc = NULL",
               [sub.id, kind, url, _sealed(db, sub.id, sub.secrets), json.dumps(sub.event_types), description,
                iso_utc(utc_now())])
    return sub


def _box(db: HubDb) -> Any:
    if db.box is None:
        raise RuntimeError("webhook secrets need the hub key: open the database with open_hub_db")
    return db.box


def _sealed(db: HubDb, sub_id: str, live: list[str]) -> str:
    """A subscription's live secrets as stored: sealed with the hub key, never in clear."""
    return _box(db).seal(json.dumps(live), secrets_label(sub_id))


def _opened(db: HubDb, sub_id: str, stored: str) -> list[str]:
    return json.loads(_box(db).open(stored, secrets_label(sub_id)))


def _subscription(db: HubDb, row: dict[str, Any]) -> Subscription:
    return Subscription(row["id"], row["kind"], row["url"], _opened(db, row["id"], row["secrets"]),
                        json.loads(row["event_types"]))


def subscriptions(db: HubDb, include_removed: bool = False) -> dict[str, Subscription]:
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT * FROM outbound_subscriptions" + ("" if include_removed else
                                                                 " WHERE removed_utc IS NULL") + " ORDER BY id")
    return {r["id"]: _subscription(db, r) for r in rows}


def list_subscriptions(db: HubDb) -> list[dict[str, Any]]:
    """Every live subscription with its queue counts (never its secrets)."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT id, kind, url, event_types, description, created_utc, secrets "
                       "FROM outbound_subscriptions WHERE removed_utc IS NULL ORDER BY id")
        counts = tx.rows("SELECT subscription_id, status, count(*) AS n FROM outbound_deliveries "
                         "GROUP BY subscription_id, status")
    for row in rows:
        row["event_types"] = json.loads(row["event_types"])
        row["live_secrets"] = len(_opened(db, row["id"], row.pop("secrets")))
        row["queue"] = {c["status"]: int(c["n"]) for c in counts if c["subscription_id"] == row["id"]}
    return rows


def remove_subscription(db: HubDb, sub_id: str) -> int:
    """Stop a subscription; its undelivered records are skipped. Returns how many were skipped."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        if not tx.run("UPDATE outbound_subscriptions SET removed_utc = ? WHERE id = ? AND removed_utc IS NULL",
                      [now, sub_id]):
            raise NotFound(f"no webhook {sub_id}", fix="List them with `kiosk hub webhook list`.")
        return tx.run("UPDATE outbound_deliveries SET status = 'skipped', done_utc = ?, "
                      "last_error = 'subscription removed' WHERE subscription_id = ? AND status = 'pending'",
                      [now, sub_id])


def rotate_secret(db: HubDb, sub_id: str, drop_old: bool = False) -> str | None:
    """Add a new secret (the newest old one stays live: both sign) or, with ``drop_old``, keep only the newest."""
    with db.transaction() as tx:
        row = tx.row("SELECT secrets FROM outbound_subscriptions WHERE id = ? AND removed_utc IS NULL"
                     + tx.for_update, [sub_id])
        if row is None:
            raise NotFound(f"no webhook {sub_id}", fix="List them with `kiosk hub webhook list`.")
        live = _opened(db, sub_id, row["secrets"])
        fresh = None if drop_old else new_secret()
        live = live[:1] if drop_old else [fresh, *live][:MAX_LIVE_SECRETS]
        tx.run("UPDATE outbound_subscriptions SET secrets = ? WHERE id = ?", [_sealed(db, sub_id, live), sub_id])
    return fresh


# -- claiming and outcomes --------------------------------------------------------------------


def anything_due(db: HubDb, now: datetime) -> bool:
    """A read-only look first, so an idle worker takes no write lock."""
    at = iso_utc(now)
    with db.transaction(write=False) as tx:
        return tx.row("SELECT 1 AS x FROM outbound_deliveries WHERE status = 'pending' AND next_attempt_utc <= ? "
                      "AND (lease_utc IS NULL OR lease_utc < ?) LIMIT 1", [at, at]) is not None


def claim(db: HubDb, now: datetime, lease_s: float, holder: str, heads: int, per_key: int) -> list[Claimed]:
    """Lease the heads of up to ``heads`` due queues and up to ``per_key`` rows of each, in queue order."""
    at, until = iso_utc(now), iso_utc(now + timedelta(seconds=lease_s))
    with db.transaction() as tx:
        found = tx.rows(
            "SELECT d.id, d.subscription_id, d.order_key FROM outbound_deliveries d "
            "WHERE d.status = 'pending' AND d.next_attempt_utc <= ? AND (d.lease_utc IS NULL OR d.lease_utc < ?) "
            "AND NOT EXISTS (SELECT 1 FROM outbound_deliveries e WHERE e.subscription_id = d.subscription_id "
            "AND e.order_key = d.order_key AND e.status = 'pending' AND e.id < d.id) "
            f"ORDER BY d.id LIMIT ?{tx.skip_locked('d')}", [at, at, heads])
        ids = [r["id"] for r in found]
        for head in found:
            ids += [r["id"] for r in tx.rows(
                "SELECT id FROM outbound_deliveries WHERE subscription_id = ? AND order_key = ? AND status = 'pending' "
                "AND id > ? AND next_attempt_utc <= ? ORDER BY id LIMIT ?",
                [head["subscription_id"], head["order_key"], head["id"], at, per_key - 1])] if per_key > 1 else []
        if not ids:
            return []
        where, params = tx.in_list("id", ids)
        tx.run(f"UPDATE outbound_deliveries SET lease_utc = ?, lease_holder = ? WHERE {where}",
               [until, holder, *params])
        where, params = tx.in_list("d.id", ids)
        rows = tx.rows("SELECT d.id AS delivery_id, d.subscription_id, d.order_key, d.attempts, e.id, e.type, "
                       "e.source, e.subject, e.time_utc, e.data FROM outbound_deliveries d "
                       f"JOIN outbound_events e ON e.id = d.event_id WHERE {where} ORDER BY d.id", params)
    return [Claimed(r["delivery_id"], r["subscription_id"], r["order_key"], r["attempts"],
                    {k: r[k] for k in ("id", "type", "source", "subject", "time_utc", "data")}) for r in rows]


def _error(text: str) -> str:
    return " ".join(text.split())[:ERROR_MAX_CHARS]


def mark_delivered(db: HubDb, items: list[Claimed], holder: str, now: datetime) -> None:
    """Record deliveries in one commit (a worker killed before it only causes resends, which receivers drop)."""
    if not items:
        return
    with db.transaction() as tx:
        where, params = tx.in_list("id", [i.delivery_id for i in items])
        tx.run("UPDATE outbound_deliveries SET status = 'delivered', attempts = attempts + 1, done_utc = ?, "
               f"last_error = '', lease_utc = NULL, lease_holder = NULL WHERE {where} AND lease_holder = ?",
               [iso_utc(now), *params, holder])


def mark_failed(db: HubDb, item: Claimed, holder: str, now: datetime, error: str, retry_at: datetime | None) -> str:
    """A failed attempt: retried at ``retry_at``, or parked when that is None. Returns the new status."""
    status = "pending" if retry_at is not None else "parked"
    with db.transaction() as tx:
        tx.run("UPDATE outbound_deliveries SET status = ?, attempts = attempts + 1, next_attempt_utc = ?, "
               "last_error = ?, done_utc = ?, lease_utc = NULL, lease_holder = NULL WHERE id = ? AND lease_holder = ?",
               [status, iso_utc(retry_at or now), _error(error), None if retry_at else iso_utc(now),
                item.delivery_id, holder])
    return status


def release(db: HubDb, items: list[Claimed], holder: str) -> None:
    """Give back leased rows that were not attempted (their queue stopped at a failure)."""
    if not items:
        return
    with db.transaction() as tx:
        where, params = tx.in_list("id", [i.delivery_id for i in items])
        tx.run(f"UPDATE outbound_deliveries SET lease_utc = NULL, lease_holder = NULL WHERE {where} "
               "AND lease_holder = ?", [*params, holder])


# -- operators -------------------------------------------------------------------------------


def list_deliveries(db: HubDb, status: str | None = None, subscription: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    sql = ("SELECT d.id, d.subscription_id, d.event_id, e.type, d.order_key, d.status, d.attempts, "
           "d.next_attempt_utc, d.last_error, d.created_utc, d.done_utc FROM outbound_deliveries d "
           "JOIN outbound_events e ON e.id = d.event_id WHERE 1 = 1")
    params: list[Any] = []
    if status:
        sql, params = sql + " AND d.status = ?", [*params, status]
    if subscription:
        sql, params = sql + " AND d.subscription_id = ?", [*params, subscription]
    with db.transaction(write=False) as tx:
        return tx.rows(sql + " ORDER BY d.id LIMIT ?", [*params, limit])


def retry(db: HubDb, ids: list[int], all_parked: bool = False, subscription: str | None = None) -> int:
    """Parked (or skipped) records back to pending, due now, attempts counted from zero."""
    now = iso_utc(utc_now())
    sql = ("UPDATE outbound_deliveries SET status = 'pending', attempts = 0, next_attempt_utc = ?, done_utc = NULL, "
           "lease_utc = NULL, lease_holder = NULL WHERE status IN ('parked', 'skipped')")
    with db.transaction() as tx:
        return _operator_update(tx, sql, [now], ids, all_parked, subscription)


def skip(db: HubDb, ids: list[int], all_parked: bool = False, subscription: str | None = None) -> int:
    """Give up on records (pending or parked): they stop blocking and are never sent."""
    now = iso_utc(utc_now())
    sql = ("UPDATE outbound_deliveries SET status = 'skipped', done_utc = ?, lease_utc = NULL, lease_holder = NULL "
           "WHERE status IN ('pending', 'parked')")
    with db.transaction() as tx:
        return _operator_update(tx, sql, [now], ids, all_parked, subscription)


def _operator_update(tx: Tx, sql: str, params: list[Any], ids: list[int], all_parked: bool,
                     subscription: str | None) -> int:
    if not ids and not all_parked:
        raise InvalidInput("no records named", fix="Give record ids (from `kiosk hub outbox list`) or --all-parked.")
    if ids:
        where, extra = tx.in_list("id", ids)
        sql, params = f"{sql} AND {where}", [*params, *extra]
    if all_parked:
        sql += " AND status = 'parked'"
    if subscription:
        sql, params = sql + " AND subscription_id = ?", [*params, subscription]
    return tx.run(sql, params)


def purge(db: HubDb, before: datetime) -> int:
    """Forget delivered and skipped records older than ``before``, and events nobody still needs."""
    with db.transaction() as tx:
        gone = tx.run("DELETE FROM outbound_deliveries WHERE status IN ('delivered', 'skipped') AND done_utc < ?",
                      [iso_utc(before)])
        if gone:
            tx.run("DELETE FROM outbound_events WHERE NOT EXISTS (SELECT 1 FROM outbound_deliveries d "
                   "WHERE d.event_id = outbound_events.id)")
    return gone


def take_turn(db: HubDb, name: str, holder: str, now: datetime, every_s: float) -> bool:
    """A periodic job shared by every worker process: True (and the next turn is ``every_s`` away) when it is
    due now; exactly one worker gets each turn."""
    at, until = iso_utc(now), iso_utc(now + timedelta(seconds=every_s))
    with db.transaction() as tx:
        tx.run("INSERT INTO outbound_leases (name, holder, until_utc) VALUES (?, '', '') ON CONFLICT (name) DO NOTHING",
               [name])
        return bool(tx.run("UPDATE outbound_leases SET holder = ?, until_utc = ? WHERE name = ? AND until_utc <= ?",
                           [holder, until, name, at]))


def get_meta(db: HubDb, key: str) -> str | None:
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT value FROM hub_meta WHERE key = ?", [key])
    return row["value"] if row else None


def set_meta(db: HubDb, key: str, value: str) -> None:
    with db.transaction() as tx:
        tx.run("INSERT INTO hub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
               [key, value])
