"""The one way a punch is written: daemon, screen and CLI all call `record_punch`.

It reads the trusted clock, appends the punch (with the clock's flags and the caller's), writes the
audit record of a manual punch and the evidence thumbnail of a face punch in the same transaction
(one durable commit per punch), then keeps the clock honest: a verified punch raises the floor, and a
clock anchor is recorded when one is due. `record_correction` holds the rules of a punch made by hand
(reason, past time, direction, a repeat confirmed) before writing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kiosk.base.errors import InvalidInput, KioskError, NeedsConfirmation
from kiosk.base.record import Punch
from kiosk.base.timeutil import parse_iso
from kiosk.punching.direction import direction_for
from kiosk.punching.position import Position
from kiosk.store.punches import NOTE_MAX_CHARS, PunchDraft
from kiosk.time.trusted import TimeReading, TrustedClock

if TYPE_CHECKING:
    from kiosk.punching.config import PunchConfig
    from kiosk.store.database import Store

log = logging.getLogger(__name__)

CORRECTION_MAX_AGE_DAYS = 31
CORRECTION_CLOCK_SLACK = timedelta(minutes=2)  # a correction "for now" typed a minute ahead is fine


@dataclass(frozen=True)
class Recorded:
    """A durable punch and the clock reading it was stamped with."""

    punch: Punch
    reading: TimeReading


def record_punch(store: Store, clock: TrustedClock, employee_id: str, method: str, *,
                 score: float | None = None, position: Position | None = None, flags: tuple[str, ...] = (),
                 note: str = "", direction: str = "", actor: str | None = None,
                 at: datetime | None = None, evidence: bytes | None = None,
                 reading: TimeReading | None = None) -> Recorded:
    """Append one punch, now or (a correction) at ``at``; with ``actor`` it is a correction made by
    hand (kind ``correction``, author ``actor``), audited in the same transaction; ``evidence`` (a face
    thumbnail) is stored in that transaction too: one durable commit per punch. ``reading`` is the
    clock reading to stamp it with when not now: a punch held for its 上班 / 下班 tap keeps the moment
    the person was recognised.

    Raises KioskError (nothing stored) when the store cannot take it.
    """
    reading = reading or clock.now()
    draft = PunchDraft(employee_id, method, reading.state, score=score,
                       lat=position.lat if position else None, lon=position.lon if position else None,
                       accuracy_m=position.accuracy_m if position else None,
                       flags=",".join((*reading.flags, *flags)), note=note, when=at or reading.utc,
                       direction=direction, kind="correction" if actor else "punch", author=actor or "",
                       mono_ns=reading.mono_ns, boot_id=reading.boot_id)
    with store.atomic("recording the punch"):
        punch = store.punches.append(draft)
        if actor is not None:
            store.audit(actor, "punch.manual", employee_id, punch_id=punch.id, note=note, ts_utc=punch.ts_utc,
                        direction=direction)
        if evidence:
            store.evidence.add(punch.id, evidence)
    _keep_clock_honest(store, clock, reading)
    return Recorded(punch, reading)


def record_correction(store: Store, clock: TrustedClock, cfg: PunchConfig, tz: ZoneInfo, employee_id: str, *,
                      note: str, actor: str, at: datetime | None = None, direction: str | None = None,
                      confirmed: bool = False) -> Recorded:
    """A punch made by hand (an admin at the kiosk): a mandatory reason, optionally a past time and a
    direction (else the rule's). A second one for the same person within ``manual_confirm_window_s``
    raises NeedsConfirmation unless ``confirmed``. Never an edit: a new record of kind ``correction``."""
    note = note.strip()
    if not note:
        raise InvalidInput("a manual punch needs a reason", fix="Say why, e.g. 'forgot card' or 'reader broken'.")
    if len(note) > NOTE_MAX_CHARS:
        raise InvalidInput(f"the reason is {len(note)} characters; at most {NOTE_MAX_CHARS}", fix="Shorten it.")
    reading = clock.now()
    if at is not None:
        _check_correction_time(at, reading.utc, tz)
    if not confirmed:
        _check_repeat(store, cfg, tz, employee_id, reading)
    if direction is None:
        direction = direction_for(cfg, tz, store, employee_id, at or reading.utc)
    return record_punch(store, clock, employee_id, "manual", note=note, direction=direction, actor=actor, at=at)


def _check_correction_time(at: datetime, now: datetime, tz: ZoneInfo) -> None:
    if at > now + CORRECTION_CLOCK_SLACK:
        raise InvalidInput(f"{at.astimezone(tz):%Y-%m-%d %H:%M} is in the future",
                           fix="A correction records a punch that was missed: give a past time, or none for now.")
    if at < now - timedelta(days=CORRECTION_MAX_AGE_DAYS):
        raise InvalidInput(f"{at.astimezone(tz):%Y-%m-%d %H:%M} is more than {CORRECTION_MAX_AGE_DAYS} days ago",
                           fix="Older attendance is corrected by HR at the hub.")


def _check_repeat(store: Store, cfg: PunchConfig, tz: ZoneInfo, employee_id: str, reading: TimeReading) -> None:
    last = store.punches.last_correction_for(employee_id)
    if last is None or last.boot_id != reading.boot_id:
        return
    age_s = (reading.mono_ns - last.mono_ns) / 1e9
    if 0 <= age_s < cfg.manual_confirm_window_s:  # a window of 0 holds no age: never asks
        when = parse_iso(last.ts_utc).astimezone(tz)
        raise NeedsConfirmation(f"{employee_id} already got a manual punch {age_s / 60:.0f} min ago "
                                f"(for {when:%H:%M}{', ' + last.direction if last.direction else ''})",
                                fix="Check it is not the same punch twice; confirm to record another one.")


def _keep_clock_honest(store: Store, clock: TrustedClock, reading: TimeReading) -> None:
    clock.punch_recorded(reading)
    if reading.state == "verified":
        clock.raise_floor(reading.utc)
    if clock.anchor_due(reading):
        try:
            clock.record_anchor(store, reading)
        except KioskError as exc:
            log.warning("clock anchor not recorded: %s", exc)
