"""Trusted time: is the wall clock right, and how can unverified punches be corrected later?

A Raspberry Pi has no real-time clock: after a power cut it boots at its last saved time until NTP
answers. Sources, best first: the kernel's NTP-synchronised flag, GPS UTC from a receiver, the
hub's clock (HTTP Date header, measured by the sync agent). A floor (the software's release date,
or the last stored punch) catches a clock that is plainly behind. While the clock is not trusted,
punches are stored `clock_state = unverified` with monotonic time and boot id; as soon as a source
establishes the true time, an *anchor* (boot id, monotonic ns, true UTC) is stored so the hub can
correct every unverified punch of that boot: true_ts = anchor_utc + (punch.mono_ns - anchor_mono_ns).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kiosk.base.timeutil import boot_id, iso_utc
from kiosk.time.config import ClockConfig
from kiosk.time.hubclock import latest_hub_clock
from kiosk.time.ntp import kernel_ntp_synchronized

log = logging.getLogger(__name__)

RELEASE_FLOOR_UTC = datetime(2026, 11, 1, tzinfo=UTC)
"""No correct clock can read earlier than this software's release."""
SLEW_MAX = 0.0005
"""The fastest rate at which NTP slews a clock (500 ppm): a wall clock drifting from the monotonic one by
more than this plus ClockConfig.step_max_s was stepped."""


@dataclass(frozen=True)
class TimeReading:
    """The wall time of one moment, how far it is trusted, and by what."""

    utc: datetime
    mono_ns: int
    state: str  # "verified" | "unverified"
    source: str  # "ntp" | "gps" | "hub" | "none"
    offset_s: float | None  # true time minus wall time, when a source measured it
    flags: tuple[str, ...] = ()
    boot_id: str = ""  # the boot ``mono_ns`` belongs to


@dataclass
class _Sample:
    offset_s: float
    mono_ns: int


@dataclass
class TrustedClock:
    """Thread-safe: GPS and the sync agent feed samples; the pipeline asks for `now()`."""

    cfg: ClockConfig
    floor_utc: datetime = RELEASE_FLOOR_UTC
    kernel_synced: Callable[[], bool | None] = kernel_ntp_synchronized
    wall: Callable[[], float] = time.time
    mono: Callable[[], int] = time.monotonic_ns
    boot: Callable[[], str] = boot_id
    _gps: _Sample | None = None
    _hub: _Sample | None = None
    _ntp_cache: tuple[int, bool] | None = None
    _last_state: str | None = None
    _last_anchor_mono: int | None = None
    _last_seen: tuple[float, int] | None = None  # (wall, mono) of the previous reading
    _stepped: bool = False  # the wall clock was stepped since the last punch
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def raise_floor(self, moment: datetime) -> None:
        """The clock can never be earlier than a punch already stored."""
        with self._lock:
            self.floor_utc = max(self.floor_utc, moment)

    def note_gps(self, gps_utc: datetime, wall_at_fix: float, mono_at_fix: int) -> None:
        """A GPS receiver's UTC, read at wall time ``wall_at_fix`` (seconds since the epoch)."""
        with self._lock:
            self._gps = _Sample(gps_utc.timestamp() - wall_at_fix, mono_at_fix)

    def note_hub(self, offset_s: float, mono_at: int) -> None:
        """The hub's clock minus ours, measured by the sync agent."""
        with self._lock:
            self._hub = _Sample(offset_s, mono_at)

    def _ntp(self, mono: int) -> bool:
        if not self.cfg.trust_kernel_ntp:
            return False
        if self._ntp_cache is None or mono - self._ntp_cache[0] > self.cfg.ntp_check_interval_s * 1e9:
            self._ntp_cache = (mono, bool(self.kernel_synced()))
        return self._ntp_cache[1]

    def _fresh(self, sample: _Sample | None, mono: int, max_age_s: float) -> _Sample | None:
        return sample if sample is not None and (mono - sample.mono_ns) <= max_age_s * 1e9 else None

    def now(self) -> TimeReading:
        """The current time and how much to trust it."""
        with self._lock:
            wall, mono = self.wall(), self.mono()
            utc = datetime.fromtimestamp(wall, UTC)
            flags: list[str] = []
            self._watch_steps(wall, mono)
            if utc < self.floor_utc:
                flags.append("clock_behind_floor")
            gps = self._fresh(self._gps, mono, self.cfg.gps_max_age_s)
            hub = self._fresh(self._hub, mono, self.cfg.hub_max_age_s)
            state, source, offset = "unverified", "none", None
            if self._ntp(mono):
                state, source, offset = "verified", "ntp", 0.0
            elif gps is not None:
                source, offset = "gps", gps.offset_s
                state = "verified" if abs(offset) <= self.cfg.gps_max_offset_s else "unverified"
            elif hub is not None:
                source, offset = "hub", hub.offset_s
                state = "verified" if abs(offset) <= self.cfg.hub_max_offset_s else "unverified"
            if flags:
                state = "unverified"
            if self._stepped:
                # Flagged, not believed: a source that vouches for the new time keeps the state verified.
                flags.append("clock_jump")
            if state != self._last_state:
                if source == "none":
                    log.info("clock is %s: no time source yet (no NTP sync, no GPS time, no hub answer)", state)
                else:
                    log.info("clock is %s (source %s, offset %+.3f s)", state, source, offset)
                self._last_state = state
            return TimeReading(utc, mono, state, source, offset, tuple(flags), self.boot())

    def _watch_steps(self, wall: float, mono: int) -> None:
        """Compare the wall clock's progress with the monotonic clock's since the previous reading."""
        last, self._last_seen = self._last_seen, (wall, mono)
        if last is None:
            return
        elapsed_s = (mono - last[1]) / 1e9
        step_s = (wall - last[0]) - elapsed_s
        if abs(step_s) > self.cfg.step_max_s + SLEW_MAX * elapsed_s:
            log.warning("the wall clock was stepped by %+.0f s (against the monotonic clock); the next punch "
                        "is flagged clock_jump", step_s)
            self._stepped = True

    def punch_recorded(self, reading: TimeReading) -> None:
        """A punch carried ``reading``: a step it was flagged for has been reported."""
        with self._lock:
            if "clock_jump" in reading.flags:
                self._stepped = False

    def anchor_due(self, reading: TimeReading) -> bool:
        """True when a source knows the true time and no recent anchor was stored this boot."""
        if reading.offset_s is None:  # source "none": nothing knows the true time
            return False
        last = self._last_anchor_mono
        return last is None or reading.mono_ns - last >= self.cfg.anchor_interval_s * 1e9

    def record_anchor(self, store, reading: TimeReading) -> None:  # noqa: ANN001 - Store
        """Store (boot id, monotonic ns, true UTC) so the hub can correct unverified punches."""
        true_utc = reading.utc + timedelta(seconds=reading.offset_s or 0.0)
        store.anchors.add(reading.boot_id, reading.mono_ns, iso_utc(true_utc), reading.source, reading.offset_s)
        self._last_anchor_mono = reading.mono_ns


def clock_for(config, store) -> TrustedClock:  # noqa: ANN001 - KioskConfig, Store
    """A TrustedClock for a process without a GPS (CLI, sync agent): kernel NTP, the hub's clock as
    last measured by the agent on this boot, and the floor of the newest verified punch."""
    clock = TrustedClock(config.clock)
    floor = store.punches.newest_verified_utc()
    if floor is not None:
        clock.raise_floor(floor)
    hub = latest_hub_clock(store)
    if hub is not None and hub.same_boot():
        clock.note_hub(hub.offset_s, hub.mono_ns)
    return clock
