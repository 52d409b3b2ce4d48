"""The delivery worker: claims due deliveries, sends them in order per employee, backs off, parks, housekeeps.

Time is injected (``clock``): the schedule (next attempts, leases, offline checks) follows it, so a
test can let a receiver be down for an hour without waiting one. Each attempt's outcome is
committed on its own, so a worker killed mid-delivery loses nothing: the lease runs out and the
record is sent again (at least once; receivers de-duplicate by ``webhook-id``).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub import devices
from sync.hub.db.base import HubDb
from sync.hub.outbound import queue
from sync.hub.outbound.config import OutboundConfig
from sync.hub.outbound.queue import Claimed, Subscription
from sync.hub.outbound.webhooks import Outcome, WebhookSender

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
OFFLINE_CHECK_EVERY_S = 10.0
PURGE_EVERY_S = 3600.0
STOP_TIMEOUT_S = 30.0
ERROR_PAUSE_S = 5.0


class Sender(Protocol):
    kind: str

    def deliver(self, sub: Subscription, event: dict[str, Any]) -> Outcome: ...

    def after_round(self, sub: Subscription, delivered: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class Job(Protocol):
    """Periodic work of a connector (e.g. polling HR's employees), run by one worker per turn."""

    name: str
    every_s: float

    def run(self, now: datetime) -> None: ...


def backoff_s(attempts: int, config: OutboundConfig, rng: random.Random) -> float:
    """Exponential with 'equal jitter': half the doubled delay fixed, half random; capped."""
    delay = min(config.backoff_max_s, config.backoff_initial_s * 2 ** max(0, attempts - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


@dataclass
class RoundReport:
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.parked


class DeliveryEngine:
    """One per hub worker process; several share the database safely."""

    def __init__(self, config: OutboundConfig, db: HubDb, senders: dict[str, Sender] | None = None,
                 jobs: list[Job] | None = None, clock: Clock = utc_now, rng: random.Random | None = None) -> None:
        self.config = config
        self.db = db
        self.senders = senders if senders is not None else {"webhook": WebhookSender(config.timeout_s)}
        self.jobs = jobs or []
        self.clock = clock
        self.rng = rng or random.Random()
        self.holder = "w_" + secrets.token_hex(8)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._turns: dict[str, datetime] = {}
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="outbound-send")

    # -- one round ---------------------------------------------------------------------

    def run_once(self) -> RoundReport:
        """Housekeeping, then claim and deliver what is due now; returns what happened."""
        self.housekeep()
        return self.deliver_due()

    def _my_turn(self, name: str, now: datetime, every_s: float) -> bool:
        """Whether this worker runs job ``name`` now; asks the database only when a turn may be due."""
        if self._turns.get(name, now) > now:
            return False
        self._turns[name] = now + timedelta(seconds=every_s)
        return queue.take_turn(self.db, name, self.holder, now, every_s)

    def housekeep(self) -> None:
        now = self.clock()
        if self._my_turn("device-offline", now, OFFLINE_CHECK_EVERY_S):
            silent = now - timedelta(seconds=self.config.device_offline_after_s)
            devices.mark_offline(self.db, iso_utc(now), iso_utc(silent))
        if self._my_turn("purge", now, PURGE_EVERY_S):
            queue.purge(self.db, now - timedelta(days=self.config.keep_delivered_days))
        for job in self.jobs:
            if self._my_turn(job.name, now, job.every_s):
                try:
                    job.run(now)
                except Exception:  # noqa: BLE001 - a failing job must not stop deliveries
                    log.exception("outbound job %s failed; it runs again in %.0f s", job.name, job.every_s)

    def deliver_due(self) -> RoundReport:
        claimed_at = self.clock()
        if not queue.anything_due(self.db, claimed_at):
            return RoundReport()
        claimed = queue.claim(self.db, claimed_at, self.config.lease_s, self.holder, self.config.batch_size,
                              self.config.per_key_batch)
        report = RoundReport()
        if not claimed:
            return report
        subs = queue.subscriptions(self.db, include_removed=True)
        by_queue: dict[tuple[str, str], list[Claimed]] = {}
        for item in claimed:  # in id order, so each queue's list is in order too
            by_queue.setdefault((item.subscription_id, item.order_key), []).append(item)
        groups = list(by_queue.values())
        results = list(self._pool.map(
            lambda g: self._deliver_group(subs.get(g[0].subscription_id), g, claimed_at), groups))
        delivered: dict[str, list[dict[str, Any]]] = {}
        for group_report, done in results:
            report.delivered += group_report.delivered
            report.retried += group_report.retried
            report.parked += group_report.parked
            report.errors += group_report.errors
            for item in done:
                delivered.setdefault(item.subscription_id, []).append(item.event)
        for sub_id, events in delivered.items():
            self._after_round(subs[sub_id], events)
        return report

    def _after_round(self, sub: Subscription, events: list[dict[str, Any]]) -> None:
        try:
            self.senders[sub.kind].after_round(sub, events)
        except Exception:  # noqa: BLE001 - the deliveries are recorded; the follow-up is retried next round
            log.exception("after delivering to %s", sub.id)

    def _deliver_group(self, sub: Subscription | None, group: list[Claimed],
                       claimed_at: datetime) -> tuple[RoundReport, list[Claimed]]:
        """One employee's events to one subscriber, in order; stops at the first failure (order is kept).
        Successes are committed together, before anything else about the group is written."""
        report, done, unrecorded = RoundReport(), [], []
        for index, item in enumerate(group):
            # A lease must not run out while we still send on it: give the rest back in time.
            lease_left = self.config.lease_s - (self.clock() - claimed_at).total_seconds()
            if lease_left < self.config.timeout_s + 1:
                self._flush(unrecorded)
                queue.release(self.db, group[index:], self.holder)
                break
            outcome = self._attempt(sub, item)
            if outcome.kind == "delivered":
                report.delivered += 1
                done.append(item)
                unrecorded.append(item)
                continue
            self._flush(unrecorded)
            status = self._record_failure(item, outcome)
            report.errors.append(outcome.error)
            if status == "parked":
                report.parked += 1
                continue  # a parked record no longer holds up the employee's later events
            report.retried += 1
            queue.release(self.db, group[index + 1:], self.holder)
            break
        self._flush(unrecorded)
        return report, done

    def _flush(self, delivered: list[Claimed]) -> None:
        queue.mark_delivered(self.db, delivered, self.holder, self.clock())
        delivered.clear()

    def _attempt(self, sub: Subscription | None, item: Claimed) -> Outcome:
        if sub is None:
            return Outcome("park", "the subscription no longer exists")
        sender = self.senders.get(sub.kind)
        if sender is None:
            return Outcome("retry", f"no sender for {sub.kind} subscriptions runs in this hub (connector off?)")
        try:
            return sender.deliver(sub, item.event)
        except Exception as exc:  # noqa: BLE001 - a sender bug is one record's failure, not the worker's
            log.exception("delivery %s to %s failed unexpectedly", item.delivery_id, sub.id)
            return Outcome("retry", f"internal error: {type(exc).__name__}")

    def _record_failure(self, item: Claimed, outcome: Outcome) -> str:
        now = self.clock()
        attempts = item.attempts + 1
        retry_at = None
        if outcome.kind == "retry" and attempts < self.config.max_attempts:
            wait = backoff_s(attempts, self.config, self.rng)
            if outcome.retry_after_s is not None:
                wait = min(max(wait, outcome.retry_after_s), self.config.backoff_max_s)
            retry_at = now + timedelta(seconds=wait)
        status = queue.mark_failed(self.db, item, self.holder, now, outcome.error, retry_at)
        if status == "parked":
            log.warning("delivery %s (%s, key %s) parked after %d attempt(s): %s", item.delivery_id,
                        item.subscription_id, item.order_key, attempts, outcome.error)
        return status

    # -- the thread -----------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the queue now (a punch just arrived)."""
        self._wake.set()

    def start(self) -> DeliveryEngine:
        self._thread = threading.Thread(target=self._loop, name="outbound-worker", daemon=True)
        self._thread.start()
        log.info("outbound delivery worker %s started", self.holder)
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = self.run_once().attempted > 0
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable; try again
                log.exception("outbound delivery round failed; retrying in %.0f s", ERROR_PAUSE_S)
                self._stop.wait(ERROR_PAUSE_S)
            if not busy:
                self._wake.wait(self.config.poll_interval_s)
                self._wake.clear()

    def stop(self) -> None:
        """Stop claiming, let in-flight deliveries finish, close the senders."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)
        self._pool.shutdown(wait=True)
        for sender in self.senders.values():
            sender.close()
