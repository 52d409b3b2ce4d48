"""Trusted time: which source vouches for the clock, the floor, and anchors that correct punches later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kiosk.base.timeutil import boot_id
from kiosk.store.punches import VERIFIED_FLOOR_SQL, PunchDraft
from kiosk.time.config import ClockConfig
from kiosk.time.correction import corrected_utc
from kiosk.time.trusted import TrustedClock

NOW = datetime(2026, 11, 26, 8, 57, tzinfo=UTC)


class Dial:
    """A settable wall clock and monotonic clock: the RTC-less board's view of time."""

    def __init__(self, wall: datetime) -> None:
        self.wall_s = wall.timestamp()
        self.mono_ns = 10_000_000_000

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_ns += int(seconds * 1e9)


def _clock(dial: Dial, ntp: bool | None = False, **cfg) -> TrustedClock:
    return TrustedClock(ClockConfig(**cfg), kernel_synced=lambda: ntp,
                        wall=lambda: dial.wall_s, mono=lambda: dial.mono_ns)


def test_ntp_synced_clock_is_verified() -> None:
    reading = _clock(Dial(NOW), ntp=True).now()
    assert reading.state == "verified" and reading.source == "ntp" and reading.offset_s == 0.0


def test_no_source_is_unverified() -> None:
    reading = _clock(Dial(NOW), ntp=None).now()
    assert reading.state == "unverified" and reading.source == "none"


def test_gps_vouches_only_when_close() -> None:
    dial = Dial(NOW)
    clock = _clock(dial)
    clock.note_gps(NOW + timedelta(seconds=0.4), dial.wall_s, dial.mono_ns)
    assert clock.now().state == "verified" and clock.now().source == "gps"
    clock.note_gps(NOW + timedelta(hours=3), dial.wall_s, dial.mono_ns)
    reading = clock.now()
    assert reading.state == "unverified" and abs(reading.offset_s - 3 * 3600) < 1
    dial.advance(10_000)  # the GPS reading goes stale
    assert clock.now().source == "none"


def test_hub_offset() -> None:
    dial = Dial(NOW)
    clock = _clock(dial)
    clock.note_hub(1.0, dial.mono_ns)
    assert clock.now().state == "verified" and clock.now().source == "hub"


def test_clock_behind_floor_is_flagged_even_with_a_source() -> None:
    dial = Dial(datetime(2021, 1, 1, tzinfo=UTC))  # a Pi that booted with its last saved time
    reading = _clock(dial, ntp=True).now()
    assert reading.state == "unverified" and "clock_behind_floor" in reading.flags
    clock = _clock(Dial(NOW), ntp=True)
    clock.raise_floor(NOW + timedelta(minutes=5))
    assert "clock_behind_floor" in clock.now().flags


def test_verified_floor_is_read_from_an_index_not_by_walking_punches(fresh_store) -> None:
    """The floor is read at start, by every `kiosk punch` and every heartbeat: it must not grow with the
    store (a kiosk offline for weeks holds mostly unverified punches)."""
    fresh_store.roster.add("E001", "Li")
    for state, moment in (("verified", NOW), ("unverified", NOW + timedelta(days=3)),
                          ("verified", NOW + timedelta(days=1)), ("unverified", NOW - timedelta(days=9))):
        fresh_store.punches.append(PunchDraft("E001", "card", state, when=moment))
    assert fresh_store.punches.newest_verified_utc() == NOW + timedelta(days=1)
    plan = fresh_store.query(f"EXPLAIN QUERY PLAN {VERIFIED_FLOOR_SQL}")
    assert any(row["detail"].startswith("SEARCH") and row["detail"].endswith("INDEX punches_verified_ts")
               for row in plan), plan


def test_anchor_corrects_unverified_punches(fresh_store) -> None:
    """Punches on a wrong clock get their true time from an anchor recorded once GPS is known."""
    fresh_store.roster.add("E001", "Li")
    dial = Dial(NOW - timedelta(days=400))  # clock far behind after a power cut
    clock = _clock(dial)
    reading = clock.now()
    punch = fresh_store.punches.append(PunchDraft("E001", "card", reading.state, when=reading.utc))
    # the stored punch carries the real monotonic clock; align the dial with it for the anchor
    dial.mono_ns = punch.mono_ns
    dial.advance(30)
    clock.note_gps(NOW + timedelta(seconds=30), dial.wall_s, dial.mono_ns)
    later = clock.now()
    assert clock.anchor_due(later)
    clock.record_anchor(fresh_store, later)
    assert not clock.anchor_due(later)
    anchors = fresh_store.query("SELECT * FROM clock_anchors")
    assert anchors[0]["boot_id"] == boot_id() and anchors[0]["source"] == "gps"
    fixed = corrected_utc(punch.mono_ns, punch.boot_id, anchors)
    assert abs((fixed - NOW).total_seconds()) < 0.01
    assert corrected_utc(punch.mono_ns, "another-boot", anchors) is None


def test_a_stepped_wall_clock_flags_the_next_punch(fresh_store) -> None:
    """The reported gap: a clock set 400 days ahead (no NTP or GPS) gave punches dated 2028 with no flag;
    a backward step was flagged only once a verified punch existed. Wall and monotonic deltas between
    readings tell a step from time passing, whichever way it goes."""
    from kiosk.punching.record import record_punch
    fresh_store.roster.add("E001", "Li")
    dial = Dial(NOW)
    clock = _clock(dial)

    def punch() -> list[str]:
        return record_punch(fresh_store, clock, "E001", "card").punch.flags.split(",")

    assert "clock_jump" not in punch()
    dial.advance(86_400)
    dial.wall_s += 30  # a day of NTP-style slewing (within 0.05 %) is no step
    assert "clock_jump" not in punch()
    dial.advance(60)
    dial.wall_s += 400 * 86_400  # someone sets the date ahead
    assert "clock_jump" in clock.now().flags  # the screen's status reading sees it too...
    flagged = record_punch(fresh_store, clock, "E001", "card").punch
    assert "clock_jump" in flagged.flags and flagged.clock_state == "unverified"  # ...and the punch carries it
    assert flagged.ts_utc.startswith("2028-")
    dial.advance(60)
    assert "clock_jump" not in punch()  # reported once
    dial.wall_s -= 3600  # and back, by an hour
    assert "clock_jump" in punch()
    assert fresh_store.punches.verify().ok
