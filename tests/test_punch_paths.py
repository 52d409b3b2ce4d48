"""Every punch goes through one writer (kiosk.punching.record.record_punch): the daemon's policy, the
screen's manual punch and `kiosk punch` keep the clock's flags, raise the floor and record anchors alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from kiosk.base.events import EventBus, EventKind
from kiosk.base.timeutil import boot_id, iso_utc, monotonic_ns
from kiosk.config import load_config
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
