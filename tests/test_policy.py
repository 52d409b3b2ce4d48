"""Punch policy over a real store: modes, debounce, geofence, card_and_face, card hint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiosk.base.errors import Conflict, InvalidInput
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
    assert nofix.kind is EventKind.PUNCHED and store.punches.head().flags == "no_gps_fix"
    coarse = Position(31.2304, 121.4737, None, inside=None)
    unsure = make("punch.debounce_s=0", locate=lambda: coarse, geofence="refuse").on_card("0087654321")
    assert unsure.kind is EventKind.PUNCHED
    assert store.punches.head().flags == "geofence_uncertain" and store.punches.head().accuracy_m is None
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


# -- what each event says (pinned by mutation testing, scripts/mutate.py) ----------------------------

class Dial:
    """The wall and monotonic clocks the policy's trusted clock reads, moved by the test."""

    def __init__(self) -> None:
        self.wall = datetime(2026, 11, 30, 0, 57, tzinfo=UTC).timestamp()  # 08:57 in Shanghai
        self.mono = 1_000_000_000_000

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += int(seconds * 1e9)


@pytest.fixture
def dialled(kiosk_home, fresh_store):
    fresh_store.roster.add("E001", "Wang Li", cards=("0012345678",))
    bus = EventBus(stdout_json=False)
    events = []
    bus.subscribe(events.append)
    dial = Dial()

    def make(*overrides: str, store=fresh_store, **kwargs) -> PunchPolicy:
        config = load_config(kiosk_home, ["device.timezone='Asia/Shanghai'", *overrides])
        clock = TrustedClock(ClockConfig(), kernel_synced=lambda: True, wall=lambda: dial.wall,
                             mono=lambda: dial.mono)
        return PunchPolicy(config, store, clock, bus, **kwargs)

    return make, fresh_store, events, dial


def said(event) -> dict:
    return {k: v for k, v in event.to_dict().items() if k != "ts_utc"}


def journal(caplog, levels: bool = False) -> list:
    """What the policy wrote to the log (the journal) during the test, whatever else logged too."""
    return [(r.levelname, r.getMessage()) if levels else r.getMessage()
            for r in caplog.records if r.name == "kiosk.punching.policy"]


def test_refusals_say_who_and_why(dialled) -> None:
    make, store, _, _ = dialled
    assert said(make("punch.mode='card'").on_face("E001", 0.9)) == {"kind": "card_required", "employee_id": "E001"}
    assert said(make("punch.mode='card_and_face'").on_face("E001", 0.9)) == {
        "kind": "card_required", "employee_id": "E001", "detail": "show your card first"}
    assert said(make("punch.mode='face'").on_card("0012345678")) == {
        "kind": "not_recognised", "employee_id": "E001", "detail": "cards are not accepted at this kiosk"}
    assert said(make().on_card("0099995678")) == {"kind": "unknown_card", "detail": "card ending 5678"}
    assert said(make("punch.mode='card_and_face'").on_card("0012345678")) == {
        "kind": "show_face", "employee_id": "E001", "name": "Wang Li"}
    assert store.punches.count() == 0


def test_a_punch_event_says_everything_and_an_unverified_clock_too(dialled) -> None:
    make, store, events, dial = dialled
    policy = make("punch.mode='face'")
    started = dial.mono
    dial.advance(0.151)
    event = policy.on_face("E001", 0.71, started_ns=started, evidence=b"jpeg")
    punch = store.punches.head()
    assert said(event) == {"kind": "punched", "employee_id": "E001", "name": "Wang Li", "local_time": "08:57",
                           "method": "face", "score": 0.71, "punch_id": punch.id, "latency_ms": 151.0,
                           "direction": "IN"}
    assert store.query("SELECT jpeg FROM evidence WHERE punch_id = ?", [punch.id])[0]["jpeg"] == b"jpeg"
    dial.advance(120)
    started = dial.mono - 151_000_000
    event = policy.on_face("E001", 0.7, started_ns=started)
    assert event.latency_ms == 151.0 and store.query("SELECT count(*) AS n FROM evidence")[0]["n"] == 1
    assert [e.kind for e in events] == [EventKind.PUNCHED, EventKind.PUNCHED], "a verified clock: nothing more"


def test_already_punched_says_who_when_and_how(dialled) -> None:
    make, _, _, dial = dialled
    policy = make("punch.debounce_s=60")
    policy.on_card("0012345678")
    dial.advance(59.999)
    assert said(policy.on_card("0012345678")) == {"kind": "already_punched", "employee_id": "E001",
                                                    "name": "Wang Li", "local_time": "08:57", "method": "card"}
    dial.advance(0.001)
    assert policy.on_card("0012345678").kind is EventKind.PUNCHED, "at exactly the window the debounce is over"


def test_a_debounce_of_one_second_still_debounces(dialled) -> None:
    make, store, _, dial = dialled
    policy = make("punch.debounce_s=1")
    policy.on_card("0012345678")
    assert policy.on_card("0012345678").kind is EventKind.ALREADY_PUNCHED, "0 s later, same monotonic time"
    dial.advance(1)
    assert policy.on_card("0012345678").kind is EventKind.PUNCHED and store.punches.count() == 2


def test_failed_attempts_start_again_after_any_punch(dialled) -> None:
    make, _, _, dial = dialled
    policy = make("punch.mode='face_or_card'", "punch.card_hint_after_attempts=2", "punch.debounce_s=0")
    assert said(policy.on_unrecognised("stranger")) == {"kind": "not_recognised", "detail": "stranger"}
    assert said(policy.on_unrecognised("again")) == {"kind": "use_card", "detail": "again"}
    policy.on_face("E001", 0.8)
    assert said(policy.on_unrecognised()) == {"kind": "not_recognised"}, "no detail unless one is given"
    assert policy.on_unrecognised().kind is EventKind.USE_CARD
    policy.on_card("0012345678")
    assert policy.on_unrecognised().kind is EventKind.NOT_RECOGNISED
    assert make().on_unrecognised().kind is EventKind.NOT_RECOGNISED, "a new policy starts at zero"


def test_a_failed_liveness_check_is_said_and_counts_towards_the_card_hint(dialled) -> None:
    make, _, _, _ = dialled
    policy = make("punch.mode='face_or_card'", "punch.card_hint_after_attempts=3", "punch.debounce_s=0")
    assert said(policy.on_not_live("no blink")) == {"kind": "not_live", "detail": "no blink"}
    assert said(policy.on_not_live()) == {"kind": "not_live"}, "no detail unless one is given"
    assert said(policy.on_unrecognised("stranger")) == {"kind": "use_card", "detail": "stranger"}, \
        "a failed liveness check and a stranger count alike"
    policy.on_card("0012345678")
    assert said(policy.on_not_live("challenge not done")) == {"kind": "not_live", "detail": "challenge not done"}


def test_card_and_face_punch_keeps_score_latency_and_evidence(dialled) -> None:
    make, store, _, dial = dialled
    policy = make("punch.mode='card_and_face'", "punch.verify_threshold=0.3", "punch.verify_window_s=10")
    assert policy.on_face_check("E001", 0.9) is None, "no card shown yet"
    policy.on_card("0012345678")
    assert policy.on_face_check("E001", 0.3, started_ns=dial.mono - 2_000_000, evidence=b"j") is not None, \
        "a score at the threshold passes"
    punch = store.punches.head()
    assert (punch.method, punch.score) == ("card+face", 0.3)
    assert policy.on_face_check("E001", 0.9) is None, "one card, one punch"
    assert store.query("SELECT jpeg FROM evidence WHERE punch_id = ?", [punch.id])[0]["jpeg"] == b"j"
    dial.advance(120)
    policy.on_card("0012345678")
    event = policy.on_face_check("E001", 0.5, started_ns=dial.mono - 2_000_000)
    assert event.latency_ms == 2.0 and event.score == 0.5 and policy.pending_verification() is None


def test_the_face_window_is_open_until_its_last_nanosecond(dialled, caplog) -> None:
    make, _, _, dial = dialled
    policy = make("punch.mode='card_and_face'", "punch.verify_window_s=10")
    policy.on_card("0012345678")
    dial.mono += 10_000_000_000
    assert policy.pending_verification() == "E001"
    dial.mono += 1
    caplog.clear()  # only what this step logs, whatever level an earlier test left
    with caplog.at_level("INFO", logger="kiosk.punching.policy"):
        assert policy.pending_verification() is None and policy.on_face_check("E001", 0.9) is None
    assert journal(caplog) == ["card_and_face: no face within 10 s for E001"], \
        "the journal says whose wait ended, by id (never a name)"


def test_a_mismatch_ends_the_wait(dialled) -> None:
    make, store, _, _ = dialled
    policy = make("punch.mode='card_and_face'")
    policy.on_card("0012345678")
    assert said(policy.on_face_mismatch("E001")) == {"kind": "face_mismatch", "employee_id": "E001"}
    assert policy.pending_verification() is None and policy.on_face_check("E001", 0.9) is None
    assert store.punches.count() == 0


def test_geofence_is_off_unless_asked_and_flags_say_so(dialled) -> None:
    make, store, events, _ = dialled
    outside = Position(31.0, 121.0, 10.0, inside=False)
    assert make(locate=lambda: outside).on_card("0012345678").kind is EventKind.PUNCHED
    assert store.punches.head().flags == "" and store.punches.head().lat == 31.0
    policy = make("punch.debounce_s=0", locate=lambda: outside, geofence_policy="flag")
    event = policy.on_card("0012345678")
    assert event.detail == "outside_geofence"
    assert said(events[-1]) == {"kind": "outside_geofence", "employee_id": "E001", "name": "Wang Li",
                                "punch_id": store.punches.head().id, "detail": "stored, flagged"}
    assert said(make("punch.debounce_s=0", geofence_policy="refuse", locate=lambda: outside).on_card("0012345678")) == {
        "kind": "outside_geofence", "employee_id": "E001", "name": "Wang Li"}


def test_an_unverified_clock_is_in_the_punch_detail_and_announced(kiosk_home, fresh_store) -> None:
    from kiosk.punching.policy import punch_detail
    assert punch_detail("", "verified") == ""
    assert punch_detail("no_gps_fix", "verified") == "no_gps_fix"
    assert punch_detail("", "unverified") == "clock unverified"
    assert punch_detail("no_gps_fix,geofence_uncertain", "unverified") == \
        "no_gps_fix,geofence_uncertain, clock unverified"
    fresh_store.roster.add("E001", "Wang Li", cards=("0012345678",))
    bus = EventBus(stdout_json=False)
    events = []
    bus.subscribe(events.append)
    clock = TrustedClock(ClockConfig(), kernel_synced=lambda: False)
    policy = PunchPolicy(load_config(kiosk_home), fresh_store, clock, bus)
    event = policy.on_card("0012345678")
    assert event.detail.endswith("clock unverified")
    assert said(events[-1]) == {"kind": "time_unverified", "punch_id": fresh_store.punches.head().id}


def test_a_store_that_cannot_record_says_so_and_stores_nothing(dialled, kiosk_home, caplog) -> None:
    from kiosk.store import open_store
    make, store, _, _ = dialled
    busy = open_store(load_config(kiosk_home, ["store.busy_timeout_s=0.1"]))
    try:
        policy = make(store=busy)
        store.conn.execute("BEGIN IMMEDIATE")
        event = policy.on_card("0012345678")
        store.conn.execute("ROLLBACK")
    finally:
        busy.close()
    assert event.kind is EventKind.STORE_ERROR and (event.employee_id, event.name) == ("E001", "Wang Li")
    assert event.detail.startswith("recording the punch failed: ") and "busy" in event.detail
    assert store.punches.count() == 0
    logged = journal(caplog, levels=True)
    assert len(logged) == 1 and logged[0][0] == "ERROR", logged
    assert logged[0][1].startswith(f"punch for E001 NOT recorded: {event.detail} Retry"), \
        "the journal says whose punch (by id), what failed and what to do"


def test_a_face_of_someone_no_longer_on_the_roster_is_not_recorded(dialled) -> None:
    make, store, _, _ = dialled
    event = make("punch.mode='face'").on_face("E404", 0.8)
    assert said(event) == {"kind": "store_error", "employee_id": "E404", "detail": "no employee 'E404' on this kiosk"}
    assert store.punches.count() == 0


# -- direction = buttons: the held punch, its deadline and the tap --------------------------------

BUTTONS = ("punch.direction='buttons'", "ui.enabled=true", "punch.direction_buttons_timeout_s=4")


def test_a_held_punch_counts_down_exactly_and_takes_its_preselection_at_the_deadline(dialled, caplog) -> None:
    make, store, events, dial = dialled
    policy = make(*BUTTONS, "punch.mode='face'")
    assert policy.seconds_to_choice_deadline() is None and policy.settle_due() is None, "nothing waits"
    recognised = dial.mono
    deadline = recognised + 4_000_000_000
    asked = policy.on_face("E001", 0.71, evidence=b"jpeg")
    assert said(asked) == {"kind": "choose_direction", "employee_id": "E001", "name": "Wang Li", "method": "face",
                           "local_time": "08:57", "score": 0.71, "direction": "IN", "choice_id": asked.choice_id,
                           "timeout_s": 4.0}
    assert policy.seconds_to_choice_deadline() == 4.0
    dial.advance(1.25)
    again = policy.on_face("E001", 0.8)  # seen again while choosing: the same punch, the time left
    assert (again.kind, again.choice_id, again.score, again.timeout_s) == (
        EventKind.CHOOSE_DIRECTION, asked.choice_id, 0.71, 2.8)
    assert policy.seconds_to_choice_deadline() == 2.75
    dial.mono = deadline - 250_000_000
    assert policy.on_face("E001", 0.8).timeout_s == 0.2 and policy.seconds_to_choice_deadline() == 0.25
    dial.mono = deadline - 1
    assert policy.settle_due() is None and store.punches.count() == 0, "one nanosecond before: still waiting"
    dial.mono = deadline
    caplog.clear()  # only what this step logs, whatever level an earlier test left
    with caplog.at_level("INFO", logger="kiosk.punching.policy"):
        settled = policy.settle_due()
    punch = store.punches.head()
    assert said(settled) == {"kind": "punched", "employee_id": "E001", "name": "Wang Li", "local_time": "08:57",
                             "method": "face", "score": 0.71, "punch_id": punch.id, "direction": "IN"}
    assert (punch.direction, punch.method, punch.score) == ("IN", "face", 0.71)
    assert punch.mono_ns == recognised, "stamped when recognised, not when the time ran out"
    assert store.query("SELECT jpeg FROM evidence WHERE punch_id = ?", [punch.id])[0]["jpeg"] == b"jpeg"
    assert journal(caplog) == ["direction: no tap within 4 s for E001; IN recorded"]
    assert policy.settle_due() is None and policy.seconds_to_choice_deadline() is None
    assert [e.kind for e in events] == [EventKind.CHOOSE_DIRECTION] * 3 + [EventKind.PUNCHED]


def test_a_held_punch_past_its_deadline_shows_no_time_left_until_it_is_settled(dialled) -> None:
    make, store, _, dial = dialled
    policy = make(*BUTTONS, "punch.mode='face'")
    asked = policy.on_face("E001", 0.7)
    dial.advance(9)  # the screen's loop has not settled it yet
    assert policy.seconds_to_choice_deadline() == 0.0
    assert policy.on_face("E001", 0.7).timeout_s == 0.0
    tapped = policy.choose_direction(asked.choice_id, "OUT")  # a tap before the loop settles it still counts
    assert (tapped.kind, tapped.direction) == (EventKind.PUNCHED, "OUT") and store.punches.head().direction == "OUT"


def test_a_tap_names_its_punch_and_a_direction(dialled) -> None:
    make, store, _, _ = dialled
    store.roster.add("E002", "Chen Jing", cards=("0087654321",))
    policy = make(*BUTTONS, "punch.mode='face_or_card'", "punch.debounce_s=0")
    first = policy.on_face("E001", 0.7)
    with pytest.raises(InvalidInput) as bad:
        policy.choose_direction(first.choice_id, "in")
    assert (bad.value.what, bad.value.fix) == ("direction 'in' is not one of IN, OUT", "Tap 上班 (IN) or 下班 (OUT).")
    second = policy.on_card("0087654321")  # the next person: the first's pre-selected IN is recorded
    assert (second.kind, second.employee_id, second.method, second.direction) == (
        EventKind.CHOOSE_DIRECTION, "E002", "card", "IN")
    assert second.choice_id != first.choice_id
    assert [(p.employee_id, p.direction, p.method) for p in store.punches.iter()] == [("E001", "IN", "face")]
    with pytest.raises(Conflict) as late:
        policy.choose_direction(first.choice_id, "OUT")  # the first's tap, after the next person came
    assert (late.value.what, late.value.fix) == ("that punch is no longer waiting for a direction (already recorded)",
                                                 "Nothing to do; a wrong direction is fixed by a correction.")
    tapped = policy.choose_direction(second.choice_id, "OUT")
    assert (tapped.kind, tapped.employee_id, tapped.method, tapped.direction) == (
        EventKind.PUNCHED, "E002", "card", "OUT")
    with pytest.raises(Conflict):
        policy.choose_direction(second.choice_id, "IN")  # tapped twice: the first tap stands
    assert [(p.employee_id, p.direction, p.method) for p in store.punches.iter()] == [
        ("E001", "IN", "face"), ("E002", "OUT", "card")]


def test_a_store_that_fails_before_the_direction_is_read_says_so(dialled, kiosk_home) -> None:
    from kiosk.store import open_store
    make, store, _, _ = dialled
    failing = open_store(load_config(kiosk_home))

    def locate() -> None:  # the fix is read after the debounce check, before the direction: the store goes then
        failing.close()

    event = make("punch.debounce_s=0", store=failing, locate=locate).on_card("0012345678")
    assert (event.kind, event.employee_id, event.name) == (EventKind.STORE_ERROR, "E001", "Wang Li")
    assert event.detail.startswith("reading the store failed") and "closed" in event.detail, event.detail
    assert store.punches.count() == 0
