"""The one way a punch is written: daemon, screen and CLI all call `record_punch`.

It reads the trusted clock, appends the punch (with the clock's flags and the caller's), writes the
audit record of a manual punch and the evidence thumbnail of a face punch in the same transaction
(one durable commit per punch), then keeps the clock honest: a verified punch raises the floor, and a
clock anchor is recorded when one is due.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.base.errors import KioskError
from kiosk.base.record import Punch
from kiosk.punching.position import Position
from kiosk.store.punches import PunchDraft
from kiosk.time.trusted import TimeReading, TrustedClock

if TYPE_CHECKING:
    from kiosk.store.database import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """A durable punch and the clock reading it was stamped with."""

    punch: Punch
    reading: TimeReading


def record_punch(store: Store, clock: TrustedClock, employee_id: str, method: str, *,
                 score: float | None = None, position: Position | None = None, flags: tuple[str, ...] = (),
                 note: str = "", actor: str | None = None, evidence: bytes | None = None) -> Recorded:
    """Append one punch now; with ``actor`` it is a manual punch, audited in the same transaction, and
    ``evidence`` (a face thumbnail) is stored in that transaction too: one durable commit per punch.

    Raises KioskError (nothing stored) when the store cannot take it.
    """
    reading = clock.now()
    draft = PunchDraft(employee_id, method, reading.state, score=score,
                       lat=position.lat if position else None, lon=position.lon if position else None,
                       accuracy_m=position.accuracy_m if position else None,
                       flags=",".join((*reading.flags, *flags)), note=note, when=reading.utc,
                       mono_ns=reading.mono_ns, boot_id=reading.boot_id)
    with store.atomic("recording the punch"):
        punch = store.punches.append(draft)
        if actor is not None:
            store.audit(actor, "punch.manual", employee_id, punch_id=punch.id, note=note)
        if evidence:
            store.evidence.add(punch.id, evidence)
    _keep_clock_honest(store, clock, reading)
    return Recorded(punch, reading)


def _keep_clock_honest(store: Store, clock: TrustedClock, reading: TimeReading) -> None:
    if reading.state == "verified":
        clock.raise_floor(reading.utc)
    if clock.anchor_due(reading):
        try:
            clock.record_anchor(store, reading)
        except KioskError as exc:
            log.warning("clock anchor not recorded: %s", exc)
