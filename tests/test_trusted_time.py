"""Trusted time: which source vouches for the clock, the floor, and anchors that correct punches later."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from kiosk.base.timeutil import boot_id, iso_utc, monotonic_ns
from kiosk.config import load_config
from kiosk.store.punches import VERIFIED_FLOOR_SQL, PunchDraft
from kiosk.time.config import ClockConfig
from kiosk.time.correction import corrected_utc
from kiosk.time.hubclock import HubClock, save_hub_clock
from kiosk.time.trusted import TrustedClock, clock_for

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


# -- every rule at its edge ---------------------------------------------------------------------------
def test_kernel_ntp_is_asked_once_per_interval_and_only_when_trusted() -> None:
    dial = Dial(NOW)
    answers: list[bool] = []

    def kernel() -> bool:  # synchronised, then not
        answers.append(not answers)
        return answers[-1]

    clock = TrustedClock(ClockConfig(ntp_check_interval_s=30), kernel_synced=kernel,
                         wall=lambda: dial.wall_s, mono=lambda: dial.mono_ns)
    assert clock.now().source == "ntp"
    dial.advance(30)  # exactly one interval later: the answer is still fresh
    assert clock.now().source == "ntp" and len(answers) == 1
    dial.advance(1e-9)
    assert clock.now().source == "none" and len(answers) == 2
    untrusted = _clock(Dial(NOW), ntp=True, trust_kernel_ntp=False)
    assert (untrusted.now().state, untrusted.now().source) == ("unverified", "none")


def test_gps_and_hub_vouch_up_to_their_limits() -> None:
    dial = Dial(NOW)
    clock = _clock(dial, gps_max_offset_s=2.0, gps_max_age_s=600, hub_max_offset_s=5.0)
    clock.note_hub(5.0, dial.mono_ns)
    assert (clock.now().state, clock.now().source, clock.now().offset_s) == ("verified", "hub", 5.0)
    clock.note_hub(-5.0, dial.mono_ns)
    assert clock.now().state == "verified"
    clock.note_hub(5.5, dial.mono_ns)
    assert (clock.now().state, clock.now().source, clock.now().offset_s) == ("unverified", "hub", 5.5)
    clock.note_gps(NOW + timedelta(seconds=2), dial.wall_s, dial.mono_ns)
    assert (clock.now().state, clock.now().source, clock.now().offset_s) == ("verified", "gps", 2.0)
    dial.advance(600)  # the GPS time is exactly as old as gps_max_age_s: still used
    assert clock.now().source == "gps"
    dial.advance(1e-9)
    assert clock.now().source == "hub"


def test_the_floor_itself_is_not_behind_the_floor() -> None:
    clock = _clock(Dial(NOW), ntp=True)
    clock.raise_floor(NOW)
    assert clock.now().flags == () and clock.now().state == "verified"
    clock.raise_floor(NOW - timedelta(days=1))  # never lowered
    clock.raise_floor(NOW + timedelta(microseconds=1))
    assert clock.now().flags == ("clock_behind_floor",)


def test_state_changes_are_logged_once_each(caplog) -> None:
    dial = Dial(NOW)
    with caplog.at_level(logging.INFO, logger="kiosk.time.trusted"):
        clock = _clock(dial, ntp=None)
        clock.now()
        clock.now()
        clock.note_hub(1.5, dial.mono_ns)
        clock.now()
        clock.now()
    assert [r.getMessage() for r in caplog.records if r.name == "kiosk.time.trusted"] == [
        "clock is unverified: no time source yet (no NTP sync, no GPS time, no hub answer)",
        "clock is verified (source hub, offset +1.500 s)"]


def test_a_step_is_more_than_step_max_s_plus_the_slew_allowance(caplog) -> None:
    dial = Dial(NOW)
    clock = _clock(dial, step_max_s=10)
    clock.now()
    dial.wall_s += 10  # exactly step_max_s with no time passing: not a step
    assert "clock_jump" not in clock.now().flags
    dial.advance(1_000_000)
    dial.wall_s += 509.9995  # 10 s + 0.05 % of 1,000,000 s (11.6 days) is 510 s
    assert "clock_jump" not in clock.now().flags
    caplog.clear()  # what was logged before (at whatever level an earlier test left) is not this test's
    with caplog.at_level(logging.WARNING, logger="kiosk.time.trusted"):
        dial.wall_s -= 3600
        stepped = clock.now()
    assert stepped.flags == ("clock_jump",)
    assert [r.getMessage() for r in caplog.records if r.name == "kiosk.time.trusted"] == [
        "the wall clock was stepped by -3600 s (against the monotonic clock); the next punch is flagged clock_jump"]
    dial.wall_s += 3600  # and back before any punch: still one step to report
    assert clock.now().flags == ("clock_jump",)
    clock.punch_recorded(stepped)
    assert clock.now().flags == ()


def test_anchors_need_a_source_and_come_once_per_interval(fresh_store) -> None:
    dial = Dial(NOW)
    clock = _clock(dial, ntp=None, anchor_interval_s=3600)
    assert not clock.anchor_due(clock.now())  # nothing knows the true time
    clock.note_gps(NOW + timedelta(seconds=1.5), dial.wall_s, dial.mono_ns)
    reading = clock.now()
    assert clock.anchor_due(reading)
    clock.record_anchor(fresh_store, reading)
    synced = _clock(dial, ntp=True, anchor_interval_s=3600)
    first = synced.now()
    synced.record_anchor(fresh_store, first)
    assert fresh_store.query("SELECT boot_id, mono_ns, utc, source, offset_s FROM clock_anchors ORDER BY id") == [
        {"boot_id": boot_id(), "mono_ns": dial.mono_ns, "utc": "2026-11-26T08:57:01.500Z", "source": "gps",
         "offset_s": 1.5},
        {"boot_id": boot_id(), "mono_ns": dial.mono_ns, "utc": "2026-11-26T08:57:00.000Z", "source": "ntp",
         "offset_s": 0.0}]
    dial.advance(3599)
    dial.mono_ns += 999_999_999
    assert not synced.anchor_due(synced.now())  # 1 ns short of the interval
    dial.mono_ns += 1
    assert synced.anchor_due(synced.now())


def test_clock_for_a_cli_takes_the_stored_floor_and_this_boots_hub_clock(kiosk_home, fresh_store) -> None:
    config = load_config(kiosk_home, ["clock.trust_kernel_ntp=false"])
    fresh_store.roster.add("E001", "Li")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    fresh_store.punches.append(PunchDraft("E001", "card", "verified", when=later))
    clock = clock_for(config, fresh_store)
    assert clock.floor_utc == later
    assert (clock.now().flags, clock.now().source) == (("clock_behind_floor",), "none")

    def measured(boot: str) -> HubClock:
        return HubClock(offset_s=0.25, uncertainty_s=0.01, rtt_s=0.02, source="x-hub-time",
                        measured_utc=iso_utc(datetime.now(UTC)), mono_ns=monotonic_ns(), boot_id=boot)

    save_hub_clock(fresh_store, measured(boot_id()))
    reading = clock_for(config, fresh_store).now()
    assert (reading.source, reading.offset_s) == ("hub", 0.25)
    save_hub_clock(fresh_store, measured("another-boot"))  # measured before a reboot: means nothing now
    assert clock_for(config, fresh_store).now().source == "none"
