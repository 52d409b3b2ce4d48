"""The sync agent on the kiosk: push punches, pull the roster, send heartbeats, apply retention.

`Agent.once()` does each step once (`kiosk sync once`). `Agent.run(stop)` schedules them with
APScheduler until ``stop`` is set (`kiosk sync run`):

- **watch** (every ``watch_interval_ms``): the daemon needs to do nothing to signal a new punch:
  committing it is the signal. The agent polls ``PRAGMA data_version`` on its own connection,
  which changes whenever another connection commits; then it compares the head seq with the
  outbox cursor and wakes the push job. A punch is at the hub within about
  watch interval + one round trip (well under 2 s).
- **push** (also every ``push_interval_s``): upload batches until the outbox is empty.
- **roster** (every ``roster_interval_s``), **heartbeat** (every ``heartbeat_interval_s``),
  **retention** (hourly, when ``retention_days`` > 0).

Every hub call shares one exponential backoff with jitter, capped at ``backoff_max_s``: a hub that
is down for weeks costs one small request per cap interval, and nothing is ever deleted unsent.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from kiosk import __version__
from kiosk.base.errors import InvalidInput, KioskError
from kiosk.base.signing import new_private_key, public_key
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.store.database import Store
from kiosk.store.syncstate import Registration, SyncState
from kiosk.time.hubclock import latest_hub_clock, save_hub_clock
from kiosk.time.trusted import clock_for
from sync.client import HubClient
from sync.config import INSECURE_HTTP_FIX, sends_token_in_clear
from sync.errors import DeviceNotAuthorized, HubRefused, HubUnreachable
from sync.protocol import (
    MAX_ANCHORS,
    MAX_ENROLMENT_TEMPLATES,
    MAX_ENROLMENTS,
    ClockAnchor,
    ConsentIn,
    DeviceEnrolment,
    DeviceEnrolmentBatch,
    EnrolmentResult,
    Heartbeat,
    RegisterRequest,
    RosterTemplate,
    encode_vector,
    validation_reason,
)
from sync.rosterapply import RosterReport, apply_page
from sync.schedule import build_scheduler

if TYPE_CHECKING:
    from kiosk.config import KioskConfig

log = logging.getLogger(__name__)

WAKE_RETRY_S = 1.0  # a wake-up of the push job that did not start is retried after this
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


class Backoff:
    """Exponential backoff with equal jitter: wait between base/2 and base, base doubling to ``cap_s``."""

    def __init__(self, initial_s: float, cap_s: float, rand: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_s, self.cap_s = initial_s, cap_s
        self.rand, self.clock = rand, clock
        self.failures = 0
        self.next_try = 0.0
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return self.clock() >= self.next_try

    def failed(self, retry_after_s: float | None = None) -> float:
        """Record a failure; returns the seconds until the next try."""
        with self._lock:
            self.failures += 1
            base = min(self.cap_s, self.initial_s * 2 ** min(self.failures - 1, 40))
            delay = base / 2 + self.rand() * base / 2
            if retry_after_s is not None:
                delay = max(delay, min(retry_after_s, self.cap_s))
            self.next_try = self.clock() + delay
            return delay

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.next_try = 0.0


@dataclass
class PushReport:
    """Totals of one push run."""

    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0


@dataclass
class OnceReport:
    """What `kiosk sync once` did, step by step (an error per step that failed)."""

    push: PushReport = field(default_factory=PushReport)
    roster: RosterReport = field(default_factory=RosterReport)
    heartbeat: bool = False
    purged: int = 0
    enrolments_sent: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_model(config: KioskConfig, store: Store) -> tuple[str | None, int | None]:
    """(model id, template length) of the face model this kiosk runs, or (None, None) for cards only; the model
    id as the store remembers it while the recogniser file is unchanged (kiosk.face.pack ``recall_model_id``)."""
    face_cfg = getattr(config, "face", None)
    if face_cfg is None:
        return None, None
    try:
        from kiosk.face.engine import EMBEDDING_DIM
        from kiosk.face.pack import resolve_pack
        return resolve_pack(face_cfg, memory=store).model_id, EMBEDDING_DIM
    except (KioskError, ImportError) as exc:
        log.warning("no face model for sync (cards only): %s", exc)
        return None, None


class Agent:
    """One kiosk store, one hub. Safe to call from several scheduler threads."""

    def __init__(self, config: KioskConfig, store: Store, transport: httpx.BaseTransport | None = None,
                 model: tuple[str | None, int | None] | None = None) -> None:
        self.config = config
        self.cfg = config.sync
        self.store = store
        self.state = SyncState(store)
        self.transport = transport
        self.backoff = Backoff(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
        self.batch_size = self.cfg.batch_size
        self._model = model
        self._client: HubClient | None = None
        self._client_key: tuple[str, str] | None = None
        self._push_lock = threading.Lock()
        self._roster_lock = threading.Lock()
        self._enrolment_lock = threading.Lock()
        self._data_version: int | None = None
        self._maybe_pending = True
        self._woken_mono = 0.0  # when watch() last woke the push job
        self._wake: Callable[[str], None] | None = None
        self.last_tick = time.monotonic()

    # -- plumbing -------------------------------------------------------------

    @property
    def model(self) -> tuple[str | None, int | None]:
        if self._model is None:
            self._model = device_model(self.config, self.store)
        return self._model

    def hub_url(self, reg: Registration) -> str:
        return self.cfg.hub_url or reg.hub_url

    def client(self) -> HubClient:
        """A client for the current registration (re-read each time: `sync register` may replace it)."""
        reg = self.state.require_registration()
        key = (self.hub_url(reg), reg.token)
        if self._client is None or self._client_key != key:
            if self._client is not None:
                self._client.close()
            self._client = self.make_client(key[0], reg.token)
            self._client_key = key
        return self._client

    def refuse_clear_text(self, url: str) -> None:
        """Every request (and registration) to a hub goes over TLS unless the hub is this machine."""
        if sends_token_in_clear(url) and not self.cfg.allow_insecure_http:
            raise InvalidInput(f"hub URL {url!r} is plain http:// to another machine: the device token would "
                               "travel in clear text", fix=INSECURE_HTTP_FIX[0].upper() + INSECURE_HTTP_FIX[1:] + ".")

    def make_client(self, url: str, token: str | None = None) -> HubClient:
        self.refuse_clear_text(url)
        return HubClient(url, token, ca_bundle=self.cfg.ca_bundle, connect_timeout_s=self.cfg.connect_timeout_s,
                         read_timeout_s=self.cfg.read_timeout_s, transport=self.transport)

    def _batch_limit(self) -> int:
        """Our batch size, never above what the hub said it accepts (registration, heartbeat)."""
        hub_max = self.state.get_int("hub_max_batch")
        return min(self.batch_size, hub_max) if hub_max > 0 else self.batch_size

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- steps ----------------------------------------------------------------

    def register(self, hub_url: str, code: str) -> Registration:
        """Spend a one-time code: the device id and token go into the encrypted store."""
        hub_url = hub_url.rstrip("/")
        parts = urlsplit(hub_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"hub URL {hub_url!r} is not an http:// or https:// address",
                               fix="Give the hub's base URL, e.g. --hub https://hub.example.bank:8750.")
        self.refuse_clear_text(hub_url)
        if not 4 <= len(code) <= 64:
            raise InvalidInput(f"registration code {code!r} is not a code the hub gives out",
                               fix="Copy the code printed by `kiosk hub device add`, e.g. 7KQM-X2PA-9HDE-CW4R.")
        chain_seq, chain_hash = self.state.chain_start_for(hub_url)
        model_id, dim = self.model
        # Registering again rotates the signing key: the new public key goes to the hub, and the store
        # switches to it only once the hub has answered (the old one stays listed, retired).
        new_key = new_private_key() if self.state.registration() is not None else None
        public = public_key(new_key) if new_key is not None else self.store.signing.current().public_key
        req = RegisterRequest(code=code, device_name=self.config.device.name, software_version=__version__,
                              model_id=model_id, template_dim=dim, chain_seq=chain_seq, chain_hash=chain_hash,
                              public_key=public)
        with self.make_client(hub_url) as client:
            answer = client.register(req)
            clock = client.last_clock
        reg = Registration(hub_url, answer.device_id, answer.token, answer.branch, iso_utc(utc_now()))
        self.state.save_registration(reg, chain_seq, new_key)
        self.state.put(hub_max_batch=answer.max_batch)
        if clock is not None:
            save_hub_clock(self.store, clock)
        log.info("registered with %s as %s (branch %s); uploads continue after seq %d", hub_url, reg.device_id,
                 reg.branch, chain_seq)
        return reg

    def push(self, max_seconds: float | None = None) -> PushReport:
        """Upload unsent punches in batches until none are left (or ``max_seconds`` passed)."""
        report = PushReport()
        client = self.client()
        start = time.monotonic()
        self._enrolments_first()
        with self._push_lock:
            while True:
                batch = self.state.pending(self._batch_limit())
                if not batch:
                    break
                try:
                    answer = client.upload(batch)
                except HubRefused as exc:
                    if exc.status != 413 or self.batch_size == 1:
                        raise
                    self.batch_size = max(1, self.batch_size // 2)
                    log.warning("hub refused a batch as too large; sending %d per batch now", self.batch_size)
                    continue
                outcome = self.state.record_results(batch, answer)
                report.batches += 1
                report.accepted += outcome.accepted
                report.duplicates += outcome.duplicates
                report.rejected += outcome.rejected
                if outcome.push_seq < batch[-1]["seq"]:
                    break
                if max_seconds is not None and time.monotonic() - start > max_seconds:
                    break
        report.seconds = round(time.monotonic() - start, 3)
        if report.batches:
            log.info("pushed %d punch(es) in %d batch(es) (%d duplicate, %d rejected)", report.accepted,
                     report.batches, report.duplicates, report.rejected)
        return report

    def _enrolments_first(self) -> None:
        """Someone enrolled here a minute ago may punch right away: their enrolment goes up before the punch,
        or the hub would flag it unknown_employee. A failure here never holds punches back (the hub then
        resolves the flag when the enrolment arrives)."""
        try:
            if self.store.enrolments.count_unsent():
                self.send_enrolments()
        except KioskError as exc:
            log.warning("enrolments before punches: %s; pushing the punches anyway", exc.what)

    def retry_rejected(self) -> PushReport:
        """Send punches the hub rejected once more (e.g. after a hub upgrade)."""
        report = PushReport()
        client = self.client()
        with self._push_lock:
            batch = self.state.rejected_records(self.batch_size)
            if batch:
                outcome = self.state.record_results(batch, client.upload(batch))
                report = PushReport(1, outcome.accepted, outcome.duplicates, outcome.rejected)
        return report

    def send_enrolments(self) -> int:
        """Send faces enrolled at this kiosk (guided capture, import) to the hub; returns how many it
        took. A refused enrolment is logged and audited, and does not block the others."""
        client = self.client()
        with self._enrolment_lock:
            return self._send_enrolments(client)

    def _send_enrolments(self, client: HubClient) -> int:
        taken = 0
        while pending := self.store.enrolments.unsent(MAX_ENROLMENTS):
            sendable, refused = _enrolments(pending)
            results = list(refused)
            if sendable:
                results += client.enrolments(DeviceEnrolmentBatch(enrolments=sendable)).results
            for result in results:
                if result.status == "rejected":
                    log.warning("the hub refused enrolment %d: %s", result.enrolment_id, result.reason)
                    self.store.audit("sync", "enroll.refused_by_hub", str(result.enrolment_id), reason=result.reason)
                else:
                    taken += 1
            self.store.enrolments.mark_sent([r.enrolment_id for r in results])
        return taken

    def pull_roster(self) -> RosterReport:
        """Download this branch's changes since the cursor and apply them (leavers erased now)."""
        report = RosterReport()
        client = self.client()
        reg = self.state.require_registration()
        model_id, _ = self.model
        with self._roster_lock:
            cursor = self.state.get_int("roster_cursor")
            if (self.state.get("roster_model_id", "") != (model_id or "")
                    or self.state.get("roster_branch", reg.branch) != reg.branch):
                if cursor:
                    log.info("this kiosk's model or branch changed: downloading the whole roster again")
                cursor = 0
            while True:
                page = client.roster(cursor)
                apply_page(self.store, self.state, page, reg.branch, model_id, report)
                cursor = page.cursor
                if not page.more:
                    break
        if report.upserted or report.erased:
            log.info("roster: %d person(s) updated, %d erased, %d template(s)", report.upserted, report.erased,
                     report.templates)
        return report

    def heartbeat(self) -> None:
        """Report health to the hub, and keep the clock offset it measured for the daemon."""
        client = self.client()
        model_id, dim = self.model
        head = self.store.punches.head()
        hub_clock = latest_hub_clock(self.store)
        beat = Heartbeat(software_version=__version__, model_id=model_id, template_dim=dim,
                         backlog=self.state.backlog(), rejected=self.state.rejected_count(),
                         last_punch_seq=head.seq if head else 0, last_punch_utc=head.ts_utc if head else None,
                         clock_offset_s=hub_clock.offset_s if hub_clock else None,
                         clock_state=clock_for(self.config, self.store).now().state,
                         disk_free_bytes=_disk_free(self.store.path),
                         temperature_c=_temperature_c(), roster_cursor=self.state.get_int("roster_cursor"),
                         clock_anchors=self._clock_anchors())
        answer = client.heartbeat(beat)
        self.state.put(hub_max_batch=answer.max_batch)
        if client.last_clock is not None:
            save_hub_clock(self.store, client.last_clock)
        self.state.put(last_heartbeat_utc=iso_utc(utc_now()))

    def _clock_anchors(self) -> list[ClockAnchor]:
        """The newest clock anchors the daemon stored (the hub keeps them; sending again is harmless)."""
        return [ClockAnchor(**row) for row in self.store.anchors.newest(MAX_ANCHORS)]

    def retention(self) -> int:
        return self.state.purge(self.cfg.retention_days)

    def once(self, retry_rejected: bool = False) -> OnceReport:
        """Every step once; a failing step is reported and the others still run."""
        report = OnceReport()
        # Enrolments before punches: a punch of someone just enrolled here must find them at the hub.
        steps: list[tuple[str, Callable[[], Any]]] = [("enrolments", self.send_enrolments), ("push", self.push)]
        if retry_rejected:
            steps.append(("retry_rejected", self.retry_rejected))
        steps += [("roster", self.pull_roster), ("heartbeat", self.heartbeat), ("retention", self.retention)]
        for name, step in steps:
            try:
                result = step()
            except KioskError as exc:
                report.errors[name] = exc.what
                self._note_error(exc)
                continue
            if name == "push":
                report.push = result
            elif name == "roster":
                report.roster = result
            elif name == "heartbeat":
                report.heartbeat = True
            elif name == "retention":
                report.purged = result
            elif name == "enrolments":
                report.enrolments_sent = result
        return report

    def _note_error(self, exc: KioskError) -> None:
        values = {"last_error": exc.what[:500], "last_error_utc": iso_utc(utc_now())}
        if isinstance(exc, DeviceNotAuthorized):
            values["auth_error"] = exc.what[:500]
        try:
            self.state.put(**values)
        except KioskError:
            log.exception("cannot record the sync error in the store")

    # -- scheduled run ---------------------------------------------------------

    def guarded(self, name: str, step: Callable[[], Any]) -> None:
        """Run a step under the shared backoff; never raise into the scheduler."""
        if not self.backoff.ready():
            return
        try:
            step()
        except HubUnreachable as exc:
            delay = self.backoff.failed(exc.retry_after_s)
            self._log_failure(name, exc, delay)
            self._note_error(exc)
        except DeviceNotAuthorized as exc:
            # Permanent until someone registers again; keep asking slowly so a new token is picked up.
            self.backoff.failed(self.cfg.backoff_max_s)
            log.error("%s: %s (%s)", name, exc.what, exc.fix)
            self._note_error(exc)
        except KioskError as exc:
            delay = self.backoff.failed()
            log.error("%s failed: %s; retrying in %.0f s", name, exc.what, delay)
            self._note_error(exc)
        except Exception:  # noqa: BLE001 - a bug must not stop the agent; it is logged with its traceback
            delay = self.backoff.failed()
            log.exception("%s failed unexpectedly; retrying in %.0f s", name, delay)
        else:
            if self.backoff.failures:
                log.info("hub reachable again")
            self.backoff.succeeded()

    def _log_failure(self, name: str, exc: HubUnreachable, delay: float) -> None:
        # First failures in full, then only when the wait has grown to the cap: weeks offline stay quiet.
        if self.backoff.failures <= 3 or self.backoff.failures % 20 == 0:
            log.warning("%s: %s; retry in %.1f s (failure %d)", name, exc.what, delay, self.backoff.failures)

    def watch(self) -> None:
        """Wake the push job when a punch was committed by another connection (the daemon)."""
        self.last_tick = time.monotonic()
        try:
            version = self.store.data_version()
            if version != self._data_version:
                self._data_version = version
                self._maybe_pending = True
            # A wake-up the scheduler skipped (the push job was still running) is retried: the punch
            # must not wait for the push interval.
            if (not self._maybe_pending or self._push_lock.locked() or not self.backoff.ready()
                    or time.monotonic() - self._woken_mono < WAKE_RETRY_S):
                return
            head = self.store.punches.head_seq()
            pending = head > self.state.get_int("push_seq") and self.state.registration() is not None
        except KioskError as exc:
            log.debug("watch: %s", exc.what)
            return
        if not pending:
            self._maybe_pending = False
        elif self._wake is not None:
            self._woken_mono = time.monotonic()
            self._wake("push")

    def scheduled_push(self) -> None:
        """The push job: on its interval, or right after watch() saw a new punch."""
        self.guarded("push", self.push)

    def local(self, name: str, step: Callable[[], Any]) -> None:
        """Run a step that does not call the hub (retention), outside the hub backoff."""
        try:
            step()
        except KioskError as exc:
            log.error("%s failed: %s", name, exc.what)
        except Exception:  # noqa: BLE001 - logged with its traceback; the agent keeps running
            log.exception("%s failed unexpectedly", name)

    def run(self, stop: threading.Event, on_tick: Callable[[], None] | None = None) -> None:
        """Run the scheduled jobs until ``stop`` is set, then finish the running ones."""
        scheduler = build_scheduler(self)
        self._wake = lambda job_id: scheduler.modify_job(job_id, next_run_time=datetime.now().astimezone())
        scheduler.start()
        log.info("sync agent running (push on new punches, every %.0f s otherwise)", self.cfg.push_interval_s)
        try:
            while not stop.wait(1.0):
                if on_tick is not None:
                    on_tick()
        finally:
            self._wake = None
            scheduler.shutdown(wait=True)
            self.close()
            log.info("sync agent stopped")


def _disk_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _temperature_c() -> float | None:
    try:
        return round(int(THERMAL_ZONE.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def _enrolments(pending: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[EnrolmentResult]]:
    """The wire form of each pending enrolment, and a refusal for one that breaks the protocol's rules
    (never sent: the hub would refuse it too, and it must not hold the others back)."""
    sendable, refused = [], []
    for entry in pending:
        try:
            sendable.append(_enrolment(entry).model_dump())
        except ValidationError as exc:
            refused.append(EnrolmentResult(enrolment_id=entry["outbox_id"], status="rejected",
                                           reason=validation_reason(exc)))
    return sendable, refused


def _enrolment(entry: dict[str, Any]) -> DeviceEnrolment:
    templates = [RosterTemplate(model_id=t["model_id"], dim=int(t["vector"].size),
                                vector_b64=encode_vector(t["vector"]), quality=t["quality"])
                 for t in entry["templates"][:MAX_ENROLMENT_TEMPLATES]]
    consent = entry.get("consent")
    return DeviceEnrolment(enrolment_id=entry["outbox_id"], employee_id=entry["employee_id"], name=entry["name"],
                           cards=entry["cards"], templates=templates, created_utc=entry["created_utc"],
                           consent=_wire_consent(consent) if consent else None,
                           consent_path=consent["path"] if consent and consent["path"] in CONSENT_WIRE_PATHS
                           else "device")


CONSENT_WIRE_PATHS = ("kiosk_guided", "kiosk_camera", "cli_photos", "csv_import")


def _wire_consent(consent: dict[str, Any]) -> ConsentIn:
    return ConsentIn(given_utc=consent["given_utc"], text_version=consent["text_version"],
                     language=consent["language"], taken_by=consent["taken_by"])
