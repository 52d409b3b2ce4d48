"""Punch policy over a real store: modes, debounce, geofence, card_and_face, card hint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiosk.base.events import EventBus, EventKind
from kiosk.config import load_config
from kiosk.punching.policy import PunchPolicy
from kiosk.punching.position import Position
from kiosk.time.config import ClockConfig
from kiosk.time.trusted import TrustedClock


@pytest.fixture
def setup(kiosk_home, fresh_store):
    fresh_store.roster.add("E001", "Wang Li", cards=("0012345678",))
    fresh_store.roster.add("E002", "Chen Jing", cards=("0087654321",))
    bus = EventBus(stdout_json=False)
    events = []
    bus.subscribe(events.append)

    def make(*overrides: str, locate=None, geofence="off") -> PunchPolicy:
        config = load_config(kiosk_home, list(overrides))
        clock = TrustedClock(ClockConfig(), kernel_synced=lambda: True)
        return PunchPolicy(config, fresh_store, clock, bus, locate=locate, geofence_policy=geofence)

    return make, fresh_store, events


def test_face_punch_then_debounce(setup) -> None:
    make, store, _ = setup
    policy = make("punch.mode='face'", "punch.debounce_s=60", "device.timezone='Asia/Shanghai'")
    first = policy.on_face("E001", 0.71)
    assert first.kind is EventKind.PUNCHED and first.name == "Wang Li" and first.method == "face"
    again = policy.on_face("E001", 0.74)
    assert again.kind is EventKind.ALREADY_PUNCHED and again.local_time == first.local_time
    assert store.punches.count() == 1
    punch = store.punches.head()
    assert punch.score == pytest.approx(0.71) and punch.clock_state == "verified"
    local = datetime.fromisoformat(punch.ts_utc.replace("Z", "+00:00")).astimezone(UTC)
    assert first.local_time == local.astimezone(policy.tz).strftime("%H:%M")
    assert policy.on_face("E002", 0.6).kind is EventKind.PUNCHED


def test_zero_debounce_allows_every_punch(setup) -> None:
    make, store, _ = setup
    policy = make("punch.debounce_s=0")
    policy.on_card("0012345678")
    policy.on_card("0012345678")
    assert store.punches.count() == 2


def test_modes(setup) -> None:
    make, store, _ = setup
    assert make("punch.mode='card'").on_face("E001", 0.9).kind is EventKind.CARD_REQUIRED
    assert make("punch.mode='face'").on_card("0012345678").kind is EventKind.NOT_RECOGNISED
    assert store.punches.count() == 0
    assert make("punch.mode='face_or_card'").on_card("00 1234 5678").kind is EventKind.PUNCHED
    assert make().on_card("99999999").kind is EventKind.UNKNOWN_CARD


def test_card_and_face(setup) -> None:
    make, store, _ = setup
    policy = make("punch.mode='card_and_face'", "punch.verify_threshold=0.4")
    assert policy.on_face("E001", 0.9).kind is EventKind.CARD_REQUIRED
    assert policy.on_card("0012345678").kind is EventKind.SHOW_FACE
    assert policy.pending_verification() == "E001"
    assert policy.on_face_check("E001", 0.2) is None  # too weak: keep waiting
    assert policy.on_face_check("E002", 0.9) is None  # not the card holder
    assert store.punches.count() == 0
    event = policy.on_face_check("E001", 0.55)
    assert event.kind is EventKind.PUNCHED and event.method == "card+face"
    assert store.punches.head().method == "card+face"


def test_card_and_face_window_expires(setup) -> None:
    make, store, _ = setup
    policy = make("punch.mode='card_and_face'", "punch.verify_window_s=1")
    policy.on_card("0012345678")
    policy.clock.mono = lambda: 10**30  # the window has long passed
    assert policy.pending_verification() is None
    assert policy.on_face_check("E001", 0.9) is None and store.punches.count() == 0


def test_card_hint_after_failures(setup) -> None:
    make, _, _ = setup
    policy = make("punch.card_hint_after_attempts=3")
    kinds = [policy.on_unrecognised().kind for _ in range(3)]
    assert kinds == [EventKind.NOT_RECOGNISED, EventKind.NOT_RECOGNISED, EventKind.USE_CARD]


def test_geofence_policies(setup) -> None:
    make, store, events = setup
    outside = Position(31.2304, 121.4737, 8.0, inside=False)
    refused = make(locate=lambda: outside, geofence="refuse").on_card("0012345678")
    assert refused.kind is EventKind.OUTSIDE_GEOFENCE and store.punches.count() == 0
    flagged = make(locate=lambda: outside, geofence="flag").on_card("0012345678")
    assert flagged.kind is EventKind.PUNCHED
    punch = store.punches.head()
    assert "outside_geofence" in punch.flags and punch.lat == pytest.approx(31.2304)
    nofix = make("punch.debounce_s=0", locate=lambda: None, geofence="refuse").on_card("0087654321")
    assert nofix.kind is EventKind.PUNCHED and "no_gps_fix" in store.punches.head().flags
    coarse = Position(31.2304, 121.4737, None, inside=None)
    unsure = make("punch.debounce_s=0", locate=lambda: coarse, geofence="refuse").on_card("0087654321")
    assert unsure.kind is EventKind.PUNCHED
    assert "geofence_uncertain" in store.punches.head().flags and store.punches.head().accuracy_m is None
    assert any(e.kind is EventKind.OUTSIDE_GEOFENCE and e.detail == "stored, flagged" for e in events)


def test_unverified_clock_is_announced(setup, kiosk_home) -> None:
    _, store, events = setup
    config = load_config(kiosk_home)
    clock = TrustedClock(ClockConfig(), kernel_synced=lambda: False)
    policy = PunchPolicy(config, store, clock, EventBus(stdout_json=False))
    policy.bus.subscribe(events.append)
    policy.on_card("0012345678")
    assert store.punches.head().clock_state == "unverified"
    assert events[-1].kind is EventKind.TIME_UNVERIFIED


@pytest.mark.parametrize("mode", ["face", "face_or_card"])
def test_a_person_marked_card_and_face_punches_only_with_card_then_face(setup, mode: str) -> None:
    make, store, events = setup
    store.roster.set_card_and_face("E001", True, reason="look-alike of E002")
    policy = make(f"punch.mode='{mode}'", "punch.debounce_s=0")
    refused = policy.on_face("E001", 0.93)
    assert refused.kind is EventKind.CARD_REQUIRED and refused.detail == "show your card first"
    assert store.punches.count() == 0
    # The card alone does not punch either: it opens the 1:1 face check, which then punches.
    assert policy.on_card("0012345678").kind is EventKind.SHOW_FACE
    assert store.punches.count() == 0 and policy.pending_verification() == "E001"
    punched = policy.on_face_check("E001", 0.55)
    assert punched.kind is EventKind.PUNCHED and punched.method == "card+face"
    # Everyone else still punches as the mode says; and the mark can be lifted.
    assert policy.on_face("E002", 0.8).kind is EventKind.PUNCHED
    store.roster.set_card_and_face("E001", False)
    assert policy.on_face("E001", 0.93).kind is EventKind.PUNCHED
    assert [r["action"] for r in store.audit_log(5)][:1] == ["employee.card_and_face_off"]


def test_card_mode_keeps_card_only_for_a_marked_person(setup) -> None:
    make, store, _ = setup
    store.roster.set_card_and_face("E001", True)
    policy = make("punch.mode='card'")
    assert policy.on_card("0012345678").kind is EventKind.PUNCHED
