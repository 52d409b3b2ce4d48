"""Every punch goes through one writer (kiosk.punching.record.record_punch): the daemon's policy, the
screen's manual punch and `kiosk punch` keep the clock's flags, raise the floor and record anchors alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from kiosk.base.errors import InvalidInput, KioskError, NeedsConfirmation
from kiosk.base.events import EventBus, EventKind
from kiosk.base.timeutil import boot_id, iso_utc, monotonic_ns
from kiosk.config import load_config
from kiosk.punching.config import PunchConfig
from kiosk.punching.position import Position
from kiosk.punching.record import record_correction, record_punch
from kiosk.store import open_store
from kiosk.time.config import ClockConfig
from kiosk.time.hubclock import HubClock, save_hub_clock
from kiosk.time.trusted import TrustedClock
from kiosk.ui.admin import manual_punch

FLOOR = datetime(2026, 11, 20, tzinfo=UTC)


def clock_at(moment: datetime, ntp: bool) -> TrustedClock:
    clock = TrustedClock(ClockConfig(), kernel_synced=lambda: ntp, wall=moment.timestamp)
    clock.raise_floor(FLOOR)
    return clock


def screen_of(kiosk_home, store, clock: TrustedClock) -> SimpleNamespace:
    """What the screen's manual punch reads from the running daemon: its config, store, clock and bus."""
    bus = EventBus(stdout_json=False)
    events: list = []
    bus.subscribe(events.append)
    return SimpleNamespace(config=load_config(kiosk_home), store=store, clock=clock, bus=bus, events=events)


def test_screen_manual_punch_keeps_the_clock_flags(kiosk_home, fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    behind = clock_at(FLOOR - timedelta(days=2), ntp=False)  # a Pi that booted at its last saved time
    daemon = screen_of(kiosk_home, fresh_store, behind)
    answer = manual_punch(daemon, "E1", "forgot card")
    punch = fresh_store.punches.head()
    assert answer["punch_id"] == punch.id and punch.method == "manual" and punch.note == "forgot card"
    assert punch.flags == "clock_behind_floor" and punch.clock_state == "unverified"
    assert [e.kind for e in daemon.events] == [EventKind.PUNCHED, EventKind.TIME_UNVERIFIED]
    audit = fresh_store.audit_log(1)[0]
    assert audit["action"] == "punch.manual" and punch.id in audit["detail"]


def test_screen_manual_punch_raises_the_floor_and_records_an_anchor(kiosk_home, fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    now = datetime(2026, 11, 29, 8, 57, tzinfo=UTC)
    synced = clock_at(now, ntp=True)
    manual_punch(screen_of(kiosk_home, fresh_store, synced), "E1", "reader broken")
    assert synced.floor_utc == now  # a later reading earlier than this is flagged
    anchors = fresh_store.query("SELECT source, utc FROM clock_anchors")
    assert anchors == [{"source": "ntp", "utc": iso_utc(now)}]


def test_cli_punch_records_an_anchor_from_the_hub_clock(kiosk_home, fresh_store, invoke) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    # The sync agent measured the hub's clock on this boot: the CLI's clock trusts it.
    save_hub_clock(fresh_store, HubClock(offset_s=0.2, uncertainty_s=0.01, rtt_s=0.02, source="x-hub-time",
                                         measured_utc=iso_utc(datetime.now(UTC)), mono_ns=monotonic_ns(),
                                         boot_id=boot_id()))
    result = invoke("punch", "--employee", "E1", "--note", "forgot card", "--config", str(kiosk_home))
    assert result.exit_code == 0, result.output
    with open_store(load_config(kiosk_home)) as store:
        punch = store.punches.head()
        assert punch.clock_state == "verified" and punch.method == "manual"
        assert [a["source"] for a in store.query("SELECT source FROM clock_anchors")] == ["hub"]


# -- record_punch and record_correction on a real store: every field, every rule ----------------------
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 29, 8, 57, tzinfo=UTC)  # 16:57 in Shanghai


class Dial:
    """The wall clock, monotonic clock and boot id a TrustedClock reads, set by the test."""

    def __init__(self) -> None:
        self.wall, self.mono, self.boot = NOW.timestamp(), 50_000_000_000, "boot-a"

    def clock(self, ntp: bool = True) -> TrustedClock:
        return TrustedClock(ClockConfig(), kernel_synced=lambda: ntp, wall=lambda: self.wall,
                            mono=lambda: self.mono, boot=lambda: self.boot)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += int(seconds * 1e9)


def test_record_punch_stores_every_field_and_the_evidence(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    dial = Dial()
    clock = dial.clock(ntp=False)
    clock.raise_floor(NOW + timedelta(days=1))  # flags the reading clock_behind_floor
    recorded = record_punch(fresh_store, clock, "E1", "face", score=0.83, flags=("outside_geofence", "x"),
                            position=Position(31.2, 121.5, 7.5, False), evidence=b"\xff\xd8jpeg")
    punch = fresh_store.punches.head()
    assert recorded.punch == punch
    assert (punch.employee_id, punch.method, punch.clock_state, punch.score) == ("E1", "face", "unverified", 0.83)
    assert (punch.lat, punch.lon, punch.accuracy_m) == (31.2, 121.5, 7.5)
    assert punch.flags == "clock_behind_floor,outside_geofence,x"
    assert (punch.note, punch.direction, punch.kind, punch.author) == ("", "", "punch", "")
    assert (punch.ts_utc, punch.mono_ns, punch.boot_id) == (iso_utc(NOW), dial.mono, "boot-a")
    assert fresh_store.query("SELECT punch_id, jpeg FROM evidence") == [{"punch_id": punch.id,
                                                                         "jpeg": b"\xff\xd8jpeg"}]
    assert [a["action"] for a in fresh_store.audit_log()] == ["employee.add"]  # not a correction


def test_record_punch_without_position_or_evidence(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    punch = record_punch(fresh_store, Dial().clock(), "E1", "card").punch
    assert (punch.score, punch.lat, punch.lon, punch.accuracy_m, punch.flags) == (None, None, None, None, "")
    assert fresh_store.query("SELECT count(*) AS n FROM evidence") == [{"n": 0}]


def test_a_correction_is_written_and_audited_in_one_go(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    at = NOW - timedelta(hours=8)
    punch = record_punch(fresh_store, Dial().clock(), "E1", "manual", note="forgot card", direction="IN",
                         actor="admin", at=at).punch
    assert (punch.kind, punch.author, punch.note, punch.direction, punch.ts_utc) == \
        ("correction", "admin", "forgot card", "IN", iso_utc(at))
    audit = fresh_store.audit_log(1)[0]
    assert (audit["actor"], audit["action"], audit["subject"]) == ("admin", "punch.manual", "E1")
    assert json.loads(audit["detail"]) == {"punch_id": punch.id, "note": "forgot card", "ts_utc": iso_utc(at),
                                           "direction": "IN"}


def test_a_busy_store_refuses_the_punch_and_says_what_it_was_doing(kiosk_home, fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    busy = open_store(load_config(kiosk_home, ["store.busy_timeout_s=0.1"]))
    try:
        fresh_store.conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(KioskError) as refused:
            record_punch(busy, Dial().clock(), "E1", "card")
        fresh_store.conn.execute("ROLLBACK")
    finally:
        busy.close()
    assert refused.value.what.startswith("recording the punch failed: ") and "busy" in refused.value.what
    assert fresh_store.punches.count() == 0


def correct(store, dial: Dial, cfg: PunchConfig | None = None, employee_id: str = "E1", **kw):  # noqa: ANN001, ANN201
    kw.setdefault("note", "forgot card")
    return record_correction(store, dial.clock(), cfg or PunchConfig(), SHANGHAI, employee_id, actor="admin", **kw)


def refused_by(error: type, call) -> tuple[str, str]:  # noqa: ANN001
    with pytest.raises(error) as info:
        call()
    return info.value.what, info.value.fix


def test_a_correction_needs_a_reason_of_at_most_500_characters(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    dial = Dial()
    assert refused_by(InvalidInput, lambda: correct(fresh_store, dial, note="  ")) == \
        ("a manual punch needs a reason", "Say why, e.g. 'forgot card' or 'reader broken'.")
    assert refused_by(InvalidInput, lambda: correct(fresh_store, dial, note="x" * 501)) == \
        ("the reason is 501 characters; at most 500", "Shorten it.")
    assert correct(fresh_store, dial, note=" " + "x" * 500 + " ").punch.note == "x" * 500
    assert fresh_store.punches.count() == 1


def test_a_correction_time_within_the_slack_and_the_age_limit(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    dial = Dial()
    cfg = PunchConfig(manual_confirm_window_s=0)
    ahead = NOW + timedelta(minutes=2)  # typed a little ahead: fine
    assert correct(fresh_store, dial, cfg, at=ahead).punch.ts_utc == iso_utc(ahead)
    oldest = NOW - timedelta(days=31)
    assert correct(fresh_store, dial, cfg, at=oldest).punch.ts_utc == iso_utc(oldest)
    assert refused_by(InvalidInput, lambda: correct(fresh_store, dial, cfg, at=ahead + timedelta(seconds=1))) == \
        ("2026-11-29 16:59 is in the future",
         "A correction records a punch that was missed: give a past time, or none for now.")
    assert refused_by(InvalidInput, lambda: correct(fresh_store, dial, cfg, at=oldest - timedelta(seconds=1))) == \
        ("2026-10-29 16:56 is more than 31 days ago", "Older attendance is corrected by HR at the hub.")
    assert fresh_store.punches.count() == 2


def test_a_correction_takes_the_direction_rule_in_the_kiosk_time_zone(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    dial = Dial()
    auto = PunchConfig(manual_confirm_window_s=0)
    record_punch(fresh_store, dial.clock(), "E1", "card", direction="IN")
    assert correct(fresh_store, dial, auto).punch.direction == "OUT"  # E1's last punch today was IN
    assert correct(fresh_store, dial, auto, direction="IN").punch.direction == "IN"  # given: kept
    windows = PunchConfig(manual_confirm_window_s=0, direction="windows",
                          direction_windows=[{"direction": "IN", "start": "05:00", "end": "11:59"}])
    # 01:00 UTC is 09:00 in Shanghai: inside the IN window of the kiosk's local day
    at = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    assert correct(fresh_store, dial, windows, at=at).punch.direction == "IN"


def test_a_second_correction_within_the_window_needs_confirmation(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    fresh_store.roster.add("E2", "Li Na")
    dial = Dial()
    cfg = PunchConfig(manual_confirm_window_s=3600, direction="none")
    first = correct(fresh_store, dial, cfg).punch
    fix = "Check it is not the same punch twice; confirm to record another one."
    assert refused_by(NeedsConfirmation, lambda: correct(fresh_store, dial, cfg)) == \
        ("E1 already got a manual punch 0 min ago (for 16:57)", fix)  # at once
    dial.advance(2400)
    assert refused_by(NeedsConfirmation, lambda: correct(fresh_store, dial, cfg)) == \
        ("E1 already got a manual punch 40 min ago (for 16:57)", fix)
    assert correct(fresh_store, dial, cfg, employee_id="E2").punch.employee_id == "E2"  # another person: no
    assert correct(fresh_store, dial, cfg, confirmed=True).punch.id != first.id  # confirmed: recorded
    dial.advance(3600)  # exactly one window after the last one
    assert correct(fresh_store, dial, cfg, direction="OUT").punch.direction == "OUT"
    dial.advance(1)
    assert refused_by(NeedsConfirmation, lambda: correct(fresh_store, dial, cfg)) == \
        ("E1 already got a manual punch 0 min ago (for 18:37, OUT)", fix)
    assert fresh_store.punches.count() == 4


def test_the_confirm_window_is_per_boot_and_off_at_zero(fresh_store) -> None:
    fresh_store.roster.add("E1", "Wang Li")
    dial = Dial()
    one_second = PunchConfig(manual_confirm_window_s=1, direction="none")
    correct(fresh_store, dial, one_second)
    dial.advance(0.5)
    with pytest.raises(NeedsConfirmation):
        correct(fresh_store, dial, one_second)
    dial.boot, dial.mono = "boot-b", dial.mono + 100_000_000  # rebooted: mono ns mean nothing across boots
    assert correct(fresh_store, dial, one_second).punch.boot_id == "boot-b"
    assert correct(fresh_store, dial, PunchConfig(manual_confirm_window_s=0)).punch.boot_id == "boot-b"
