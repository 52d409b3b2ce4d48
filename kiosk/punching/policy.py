"""Punch policy: who may punch how (mode, and card + face for a person marked so), debounce, geofence,
direction (asked on the screen with direction = buttons), trusted time -> one durable punch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.base.errors import Conflict, InvalidInput, KioskError
from kiosk.base.events import Event, EventBus, EventKind
from kiosk.base.record import Punch
from kiosk.base.timeutil import parse_iso, uuid7
from kiosk.punching.direction import direction_for
from kiosk.punching.position import Position
from kiosk.punching.record import record_punch
from kiosk.time.trusted import TimeReading, TrustedClock

log = logging.getLogger(__name__)


@dataclass
class _PendingCard:
    employee_id: str
    deadline_mono_ns: int


@dataclass(frozen=True)
class _Accepted:
    """A punch everything is decided for but (maybe) its direction, stamped with ``reading``."""

    employee_id: str
    name: str | None
    method: str
    score: float | None
    position: Position | None
    flags: tuple[str, ...]
    evidence: bytes | None
    started_ns: int | None
    reading: TimeReading


@dataclass(frozen=True)
class DirectionChoice:
    """direction = buttons: an accepted punch waiting for the person's 上班 / 下班 tap; recorded with the
    tapped direction, or with ``likely`` (the pre-selected one: IN or OUT by the auto rule) once
    ``deadline_mono_ns`` passes."""

    choice_id: str
    punch: _Accepted
    likely: str
    deadline_mono_ns: int


DIRECTIONS = ("IN", "OUT")


def punch_detail(flags: str, clock_state: str) -> str:
    """What a punched event adds to its log line: the punch's flags and an unverified clock."""
    return ", ".join(part for part in (flags, "" if clock_state == "verified" else "clock unverified") if part)


class PunchPolicy:
    """Turns recognitions and card reads into punches and events. Thread-safe."""

    def __init__(self, config, store, clock: TrustedClock, bus: EventBus,  # noqa: ANN001 - KioskConfig, Store
                 locate: Callable[[], Position | None] | None = None, geofence_policy: str = "off") -> None:
        self.cfg = config.punch
        self.tz = ZoneInfo(config.device.timezone)
        self.store, self.clock, self.bus = store, clock, bus
        self.locate = locate
        self.geofence_policy = geofence_policy
        self.failed_attempts = 0
        self.pending: _PendingCard | None = None
        self.choice: DirectionChoice | None = None
        self._lock = threading.RLock()

    # -- inputs ----------------------------------------------------------

    def on_face(self, employee_id: str, score: float, started_ns: int | None = None,
                evidence: bytes | None = None) -> Event:
        """A face accepted by the matcher (and liveness) for ``employee_id``; ``started_ns`` is the
        monotonic time the walk-up's first frame was captured (for the latency on the event);
        ``evidence`` a face thumbnail stored with the punch, in its transaction."""
        with self._lock:
            self.failed_attempts = 0
            if self.cfg.mode == "card":
                return self._emit(Event(EventKind.CARD_REQUIRED, employee_id=employee_id))
            if self._card_and_face(self.store.roster.get(employee_id)):
                return self._emit(Event(EventKind.CARD_REQUIRED, employee_id=employee_id,
                                        detail="show your card first"))
            return self._punch(employee_id, "face", score, started_ns, evidence)

    def on_unrecognised(self, detail: str = "") -> Event:
        """A walk-up ended without a match (stranger, or a colleague not enrolled here)."""
        return self._failed(EventKind.NOT_RECOGNISED, detail)

    def on_not_live(self, detail: str = "") -> Event:
        """The liveness check failed (no blink, a challenge not done in time or done wrong)."""
        return self._failed(EventKind.NOT_LIVE, detail)

    def _failed(self, kind: EventKind, detail: str) -> Event:
        """A failed attempt: said as ``kind``, or as "use your card" once there have been enough."""
        with self._lock:
            self.failed_attempts += 1
            if self.failed_attempts >= self.cfg.card_hint_after_attempts:
                return self._emit(Event(EventKind.USE_CARD, detail=detail))
            return self._emit(Event(kind, detail=detail))

    def on_card(self, card_id: str) -> Event:
        with self._lock:
            employee = self.store.roster.by_card(card_id)
            if employee is None:
                return self._emit(Event(EventKind.UNKNOWN_CARD, detail=f"card ending {card_id[-4:]}"))
            if self.cfg.mode == "face" and not employee.card_and_face:
                return self._emit(Event(EventKind.NOT_RECOGNISED, employee_id=employee.id,
                                        detail="cards are not accepted at this kiosk"))
            if self._card_and_face(employee):
                deadline = self.clock.mono() + int(self.cfg.verify_window_s * 1e9)
                self.pending = _PendingCard(employee.id, deadline)
                return self._emit(Event(EventKind.SHOW_FACE, employee_id=employee.id, name=employee.name))
            self.failed_attempts = 0
            return self._punch(employee.id, "card", None)

    def _card_and_face(self, employee) -> bool:  # noqa: ANN001 - Employee | None (not on the roster)
        """Whether this person punches with a card, then a 1:1 face check: everyone under punch.mode =
        card_and_face, and a person marked card + face (a look-alike: `kiosk employee card-and-face`)
        under any mode that uses faces."""
        if self.cfg.mode == "card_and_face":
            return True
        if self.cfg.mode == "card":
            return False
        return bool(employee and employee.card_and_face)

    def pending_verification(self) -> str | None:
        """card_and_face: the card holder whose face is awaited, if the window is still open."""
        with self._lock:
            if self.pending and self.clock.mono() > self.pending.deadline_mono_ns:
                log.info("card_and_face: no face within %.0f s for %s", self.cfg.verify_window_s,
                         self.pending.employee_id)
                self.pending = None
            return self.pending.employee_id if self.pending else None

    def on_face_check(self, employee_id: str, score: float, started_ns: int | None = None,
                      evidence: bytes | None = None) -> Event | None:
        """card_and_face: a 1:1 score of the face in view against the card holder's templates."""
        with self._lock:
            if self.pending is None or self.pending.employee_id != employee_id:
                return None
            if score < self.cfg.verify_threshold:
                return None  # keep looking until the window closes
            self.pending = None
            return self._punch(employee_id, "card+face", score, started_ns, evidence)

    def on_face_mismatch(self, employee_id: str) -> Event:
        with self._lock:
            self.pending = None
            return self._emit(Event(EventKind.FACE_MISMATCH, employee_id=employee_id))

    # -- the punch -------------------------------------------------------

    def _local_hhmm(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%H:%M")

    def _recent_punch(self, employee_id: str, reading: TimeReading) -> Punch | None:
        last = self.store.punches.last_for(employee_id)
        if last is None or self.cfg.debounce_s <= 0:
            return None
        if last.boot_id == reading.boot_id:
            elapsed = (reading.mono_ns - last.mono_ns) / 1e9
        else:
            elapsed = (reading.utc - parse_iso(last.ts_utc)).total_seconds()
        return last if 0 <= elapsed < self.cfg.debounce_s else None

    def _punch(self, employee_id: str, method: str, score: float | None, started_ns: int | None = None,
               evidence: bytes | None = None) -> Event:
        employee = self.store.roster.get(employee_id)
        name = employee.name if employee else None
        if self.choice is not None:
            if self.choice.punch.employee_id == employee_id:
                return self._emit(self._choice_event(self.choice))  # still choosing: ask again
            self._settle(self.choice.likely)  # the next person is here: the last one's pre-selection stands
        recent = self._recent_punch(employee_id, self.clock.now())
        if recent is not None:
            return self._emit(Event(EventKind.ALREADY_PUNCHED, employee_id=employee_id, name=name,
                                    local_time=self._local_hhmm(parse_iso(recent.ts_utc)), method=method))
        flags: list[str] = []
        position = self.locate() if self.locate else None
        if self.geofence_policy != "off":
            # Only a fix clearly outside is refused: a kiosk that loses its fix indoors (or gets a
            # coarse one) still punches, flagged, so nobody is locked out.
            if position is None:
                flags.append("no_gps_fix")
            elif position.inside is None:
                flags.append("geofence_uncertain")
            elif not position.inside:
                if self.geofence_policy == "refuse":
                    return self._emit(Event(EventKind.OUTSIDE_GEOFENCE, employee_id=employee_id, name=name))
                flags.append("outside_geofence")
        accepted = _Accepted(employee_id, name, method, score, position, tuple(flags), evidence, started_ns,
                             self.clock.now())
        try:
            direction = direction_for(self.cfg, self.tz, self.store, employee_id, accepted.reading.utc)
        except KioskError as exc:
            return self._store_error(accepted, exc)
        if self.cfg.direction == "buttons":
            # The direction is in the hashed record: the punch waits (stamped now) until it is chosen.
            self.choice = DirectionChoice(str(uuid7()), accepted, direction,
                                          accepted.reading.mono_ns + int(self.cfg.direction_buttons_timeout_s * 1e9))
            return self._emit(self._choice_event(self.choice))
        return self._record(accepted, direction)

    # -- direction = buttons -----------------------------------------------

    def _choice_event(self, choice: DirectionChoice) -> Event:
        p = choice.punch
        left_s = max(0.0, (choice.deadline_mono_ns - self.clock.mono()) / 1e9)
        return Event(EventKind.CHOOSE_DIRECTION, employee_id=p.employee_id, name=p.name, method=p.method,
                     local_time=self._local_hhmm(p.reading.utc), score=p.score, direction=choice.likely,
                     choice_id=choice.choice_id, timeout_s=round(left_s, 1))

    def choose_direction(self, choice_id: str, direction: str) -> Event:
        """The person tapped 上班 (IN) or 下班 (OUT) for the punch ``choice_id``: record it so.

        Raises InvalidInput for another direction, Conflict when that punch is no longer waiting
        (its time ran out and the pre-selected direction was recorded, or it is another person's)."""
        if direction not in DIRECTIONS:
            raise InvalidInput(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}",
                               fix="Tap 上班 (IN) or 下班 (OUT).")
        with self._lock:
            if self.choice is None or self.choice.choice_id != choice_id:
                raise Conflict("that punch is no longer waiting for a direction (already recorded)",
                               fix="Nothing to do; a wrong direction is fixed by a correction.")
            return self._settle(direction)

    def seconds_to_choice_deadline(self) -> float | None:
        """Seconds until a waiting punch takes its pre-selected direction (None: nothing waits)."""
        with self._lock:
            choice = self.choice
        return None if choice is None else max(0.0, (choice.deadline_mono_ns - self.clock.mono()) / 1e9)

    def settle_due(self) -> Event | None:
        """Record a waiting punch whose time to choose has run out, with its pre-selected direction."""
        with self._lock:
            if self.choice is None or self.clock.mono() < self.choice.deadline_mono_ns:
                return None
            log.info("direction: no tap within %.0f s for %s; %s recorded", self.cfg.direction_buttons_timeout_s,
                     self.choice.punch.employee_id, self.choice.likely)
            return self._settle(self.choice.likely)

    def settle_waiting(self) -> Event | None:
        """Record a waiting punch now, with its pre-selected direction (the daemon stops: never lose it)."""
        with self._lock:
            return self._settle(self.choice.likely) if self.choice is not None else None

    def _settle(self, direction: str) -> Event:
        choice, self.choice = self.choice, None
        return self._record(choice.punch, direction)

    # -- the punch -------------------------------------------------------

    def _record(self, p: _Accepted, direction: str) -> Event:
        try:
            recorded = record_punch(self.store, self.clock, p.employee_id, p.method, score=p.score,
                                    position=p.position, flags=p.flags, direction=direction, evidence=p.evidence,
                                    reading=p.reading)
        except KioskError as exc:
            return self._store_error(p, exc)
        punch, reading = recorded.punch, recorded.reading
        latency_ms = (self.clock.mono() - p.started_ns) / 1e6 if p.started_ns else None
        event = self._emit(Event(EventKind.PUNCHED, employee_id=p.employee_id, name=p.name, method=p.method,
                                 local_time=self._local_hhmm(reading.utc), score=p.score, punch_id=punch.id,
                                 direction=punch.direction or None,
                                 latency_ms=latency_ms, detail=punch_detail(punch.flags, reading.state)))
        if reading.state != "verified":
            self._emit(Event(EventKind.TIME_UNVERIFIED, punch_id=punch.id))
        if "outside_geofence" in p.flags:
            self._emit(Event(EventKind.OUTSIDE_GEOFENCE, employee_id=p.employee_id, name=p.name,
                             punch_id=punch.id, detail="stored, flagged"))
        return event

    def _store_error(self, p: _Accepted, exc: KioskError) -> Event:
        log.error("punch for %s NOT recorded: %s", p.employee_id, exc)
        return self._emit(Event(EventKind.STORE_ERROR, employee_id=p.employee_id, name=p.name, detail=exc.what))

    def _emit(self, event: Event) -> Event:
        self.bus.publish(event)
        return event
