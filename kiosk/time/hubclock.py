"""The hub's clock as a time source: offset measured from each answer, kept in the store for the daemon.

The daemon's trusted-time logic (kiosk.time.trusted.TrustedClock) reads the latest measurement::

    hub = latest_hub_clock(store)
    if hub is not None and hub.same_boot():
        clock.note_hub(hub.offset_s, hub.mono_ns)

The hub stamps every answer with ``X-Hub-Time`` (UTC, milliseconds); the standard ``Date`` header
(one-second resolution) is the fallback for a hub or proxy that drops it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from kiosk.base.timeutil import HUB_TIME_HEADER, boot_id, iso_utc, monotonic_ns, parse_iso, utc_now
from kiosk.store.syncstate import SyncState

log = logging.getLogger(__name__)

STATE_KEY = "hub_clock"
DATE_RESOLUTION_S = 1.0


@dataclass(frozen=True)
class HubClock:
    """Hub time minus this kiosk's wall clock, and when and how well it was measured."""

    offset_s: float
    uncertainty_s: float
    rtt_s: float
    source: str  # "x-hub-time" | "date"
    measured_utc: str  # this kiosk's wall clock at the measurement
    mono_ns: int  # CLOCK_MONOTONIC at the measurement (ties it to this boot)
    boot_id: str

    def same_boot(self) -> bool:
        """Monotonic times compare only within one boot."""
        return self.boot_id == boot_id()

    def age_s(self) -> float | None:
        """Seconds since the measurement, or None after a reboot."""
        return (monotonic_ns() - self.mono_ns) / 1e9 if self.same_boot() else None


def measure(headers: Any, sent_wall_s: float, received_wall_s: float, sent_mono_ns: int,
            received_mono_ns: int) -> HubClock | None:
    """The offset from one answer: the hub read its clock about halfway through the round trip."""
    rtt_s = max(0.0, (received_mono_ns - sent_mono_ns) / 1e9)
    midpoint_wall = (sent_wall_s + received_wall_s) / 2
    stamp = headers.get(HUB_TIME_HEADER)
    try:
        if stamp:
            hub_s, source, resolution = parse_iso(stamp).timestamp(), "x-hub-time", 0.001
        elif headers.get("date"):
            # Date is truncated to the second: its true moment is on average half a second later.
            hub_s = parsedate_to_datetime(headers["date"]).timestamp() + DATE_RESOLUTION_S / 2
            source, resolution = "date", DATE_RESOLUTION_S
        else:
            return None
    except (TypeError, ValueError):
        log.debug("unreadable hub time header %r", stamp or headers.get("date"))
        return None
    return HubClock(offset_s=round(hub_s - midpoint_wall, 4), uncertainty_s=round(rtt_s / 2 + resolution, 4),
                    rtt_s=round(rtt_s, 4), source=source, measured_utc=iso_utc(utc_now()),
                    mono_ns=(sent_mono_ns + received_mono_ns) // 2, boot_id=boot_id())


def save_hub_clock(store: Any, clock: HubClock) -> None:
    """Keep the latest measurement in the store's sync_state (the daemon reads it from there)."""
    SyncState(store).put(**{STATE_KEY: json.dumps(asdict(clock))})


def latest_hub_clock(store: Any) -> HubClock | None:
    """The latest hub clock measurement stored by the sync agent, or None if there is none yet."""
    value = SyncState(store).get(STATE_KEY)
    if not value:
        return None
    try:
        return HubClock(**json.loads(value))
    except (TypeError, ValueError):
        log.warning("ignoring an unreadable hub clock record in the store")
        return None
