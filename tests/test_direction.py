"""IN (上班) / OUT (下班) on every punch by the kiosk's rule, corrections made by hand for a missed time,
and punches stored before these fields existed still verifying on the kiosk and at the hub."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from test_hub_api import register, upload
from test_sync_protocol import chain

from kiosk.base.errors import Conflict, InvalidInput
from kiosk.base.events import EventBus, EventKind
from kiosk.base.record import GENESIS_HASH, punch_hash
from kiosk.config import load_config
from kiosk.punching.policy import PunchPolicy
from kiosk.store import open_store
from kiosk.time.config import ClockConfig
from kiosk.time.trusted import TrustedClock

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at_local(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).timestamp()


@pytest.fixture
def kiosk_at(kiosk_home, fresh_store):
    """A policy whose clock reads the wall time in ``now[0]`` (epoch seconds); its monotonic clock
    follows the same value, so moving ``now[0]`` on is time passing."""
    fresh_store.roster.add("E1", "Wang Li")
    now = [at_local(30, 8, 57)]

    def make(*overrides: str) -> PunchPolicy:
        config = load_config(kiosk_home, ["punch.mode='face'", "punch.debounce_s=0",
                                          "device.timezone='Asia/Shanghai'", *overrides])
        clock = TrustedClock(ClockConfig(), kernel_synced=lambda: True, wall=lambda: now[0],
                             mono=lambda: int(now[0] * 1e9))
        return PunchPolicy(config, fresh_store, clock, EventBus(stdout_json=False))

    return make, now, fresh_store


def punch_at(policy: PunchPolicy, now: list[float], moment: float) -> str:
    now[0] = moment
    event = policy.on_face("E1", 0.7)
    assert event.kind is EventKind.PUNCHED
    return event.direction or ""


def test_auto_alternates_within_the_work_day_and_starts_over_the_next(kiosk_at) -> None:
    make, now, store = kiosk_at
    policy = make()
    got = [punch_at(policy, now, at_local(30, h, m)) for h, m in ((8, 57), (12, 0), (13, 5), (18, 2))]
    assert got == ["IN", "OUT", "IN", "OUT"]
    assert punch_at(policy, now, at_local(30, 23, 59)) == "IN"  # a fifth: forgot to clock out? IN again
    next_morning = datetime(2026, 12, 1, 8, 50, tzinfo=SHANGHAI).timestamp()
    assert punch_at(policy, now, next_morning) == "IN"  # a new work day starts with IN
    assert [p.direction for p in store.punches.iter()] == ["IN", "OUT", "IN", "OUT", "IN", "IN"]


def test_the_work_day_boundary_keeps_a_night_shift_together(kiosk_at) -> None:
    make, now, _ = kiosk_at
    policy = make("punch.day_starts_at='14:00'")  # the night shift runs 22:00 - 06:00
    assert punch_at(policy, now, at_local(29, 21, 55)) == "IN"
    assert punch_at(policy, now, at_local(30, 6, 3)) == "OUT"  # after midnight, the same work day
    assert punch_at(policy, now, at_local(30, 21, 58)) == "IN"  # after 14:00: a new work day


def test_windows_and_none(kiosk_at) -> None:
    make, now, _ = kiosk_at
    windows = ("punch.direction='windows'", "punch.direction_windows=[{direction='IN', start='22:00', end='02:59'},"
               "{direction='OUT', start='05:00', end='09:59'}]")
    policy = make(*windows)
    assert punch_at(policy, now, at_local(29, 23, 30)) == "IN"  # a window across midnight
    assert punch_at(policy, now, at_local(30, 6, 30)) == "OUT"
    assert punch_at(policy, now, at_local(30, 12, 0)) == ""  # outside every window: no direction
    assert punch_at(make("punch.direction='none'"), now, at_local(30, 18, 0)) == ""


def test_windows_need_a_window(kiosk_home, invoke) -> None:
    result = invoke("config", "check", "--config", str(kiosk_home), "--set", "punch.direction='windows'")
    assert result.exit_code == 1 and "direction_windows" in result.output


BUTTONS = ("punch.direction='buttons'", "ui.enabled=true", "punch.direction_buttons_timeout_s=4")


def test_buttons_need_the_screen(kiosk_home, invoke) -> None:
    refused = invoke("config", "check", "--config", str(kiosk_home), "--set", "punch.direction='buttons'",
                     "--set", "ui.enabled=false")
    assert refused.exit_code == 1
    assert "punch.direction = 'buttons'" in refused.output and "set ui.enabled = true" in refused.output
    ok = invoke("config", "check", "--config", str(kiosk_home), "--set", "punch.direction='buttons'",
                "--set", "ui.enabled=true")
    assert ok.exit_code == 0, ok.output


def test_buttons_hold_the_punch_until_a_tap_or_the_timeout(kiosk_at) -> None:
    make, now, store = kiosk_at
    policy = make(*BUTTONS)
    now[0] = at_local(30, 8, 57)
    asked = policy.on_face("E1", 0.7)
    assert (asked.kind, asked.direction, asked.timeout_s) == (EventKind.CHOOSE_DIRECTION, "IN", 4.0)
    assert list(store.punches.iter()) == []  # the direction is in the hash: nothing is written before it is known
    now[0] += 2
    assert policy.settle_due() is None and policy.seconds_to_choice_deadline() == 2.0
    assert policy.on_face("E1", 0.7).choice_id == asked.choice_id  # seen again while choosing: asked again
    now[0] += 2.5
    timed_out = policy.settle_due()
    assert (timed_out.kind, timed_out.direction) == (EventKind.PUNCHED, "IN")
    assert timed_out.local_time == "08:57"  # stamped when recognised, not when the time ran out
    with pytest.raises(Conflict):
        policy.choose_direction(asked.choice_id, "OUT")  # too late: recorded as pre-selected
    now[0] = at_local(30, 12, 0)
    second = policy.on_face("E1", 0.7)
    assert second.direction == "OUT"  # auto's choice, pre-selected
    with pytest.raises(InvalidInput):
        policy.choose_direction(second.choice_id, "SIDEWAYS")
    tapped = policy.choose_direction(second.choice_id, "IN")  # back from lunch, not leaving
    assert (tapped.kind, tapped.direction) == (EventKind.PUNCHED, "IN")
    assert policy.seconds_to_choice_deadline() is None
    assert [(p.direction, p.method) for p in store.punches.iter()] == [("IN", "face"), ("IN", "face")]


def test_buttons_never_lose_a_punch_to_the_next_person_or_a_stop(kiosk_at) -> None:
    make, now, store = kiosk_at
    store.roster.add("E2", "Li Na", cards=("0000000042",))
    policy = make(*BUTTONS, "punch.mode='face_or_card'")
    first = policy.on_face("E1", 0.7)
    by_card = policy.on_card("0000000042")  # the next person before the first chose: the first's IN stands
    assert (first.kind, by_card.kind, by_card.method) == (EventKind.CHOOSE_DIRECTION,) * 2 + ("card",)
    assert [(p.employee_id, p.direction) for p in store.punches.iter()] == [("E1", "IN")]
    stopped = policy.settle_waiting()  # the daemon stops: the waiting card punch is recorded as pre-selected
    assert (stopped.employee_id, stopped.direction, stopped.method) == ("E2", "IN", "card")
    assert policy.settle_waiting() is None
    assert store.punches.verify().ok


def test_a_missed_punch_is_corrected_for_its_time_and_never_edited(kiosk_home, invoke) -> None:
    cfg = ("--config", str(kiosk_home), "--set", "device.timezone='Asia/Shanghai'")
    assert invoke("employee", "add", "E1", "--name", "Wang Li", *cfg).exit_code == 0
    yesterday = (datetime.now(SHANGHAI) - timedelta(days=1)).strftime("%Y-%m-%d")
    done = invoke("punch", "--employee", "E1", "--note", "forgot to punch", "--at", f"{yesterday} 08:57", *cfg)
    assert done.exit_code == 0, done.output
    assert f"{yesterday} 08:57 IN" in done.output
    out = invoke("punch", "--employee", "E1", "--note", "left at 18:05", "--at", f"{yesterday} 18:05", "--yes",
                 "--json", *cfg)
    record = json.loads(out.output)
    assert (record["kind"], record["direction"], record["author"], record["note"]) == \
        ("correction", "OUT", "admin", "left at 18:05")
    future = invoke("punch", "--employee", "E1", "--note", "x", "--at", "2999-01-01 09:00", "--yes", *cfg)
    assert future.exit_code == 1 and "in the future" in future.output
    garbled = invoke("punch", "--employee", "E1", "--note", "x", "--at", "nine", "--yes", *cfg)
    assert garbled.exit_code == 1 and "HH:MM" in garbled.output and "Traceback" not in garbled.output
    with open_store(load_config(kiosk_home)) as store:
        punches = list(store.punches.iter())
        assert [(p.kind, p.direction) for p in punches] == [("correction", "IN"), ("correction", "OUT")]
        assert punches[0].ts_utc.startswith(datetime.fromisoformat(f"{yesterday}T08:57:00+08:00")
                                             .astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
        assert store.punches.verify().ok
        audit = [a for a in store.audit_log(10) if a["action"] == "punch.manual"]
        assert len(audit) == 2 and all("ts_utc" in a["detail"] for a in audit)


def test_a_record_from_before_direction_verifies_and_reaches_the_hub(hub) -> None:
    # What a kiosk released before this field stored and hashed: no direction, kind or author at all.
    old = chain(1)[0]
    assert "direction" not in old and old["hash"] == punch_hash(old)
    new = {**chain(1, start_seq=2, prev=old["hash"])[0]}
    new.update(direction="OUT", kind="correction", author="admin")
    new["hash"] = punch_hash({k: v for k, v in new.items() if k != "hash"})
    assert punch_hash({**old, "direction": "", "kind": "punch", "author": ""}) == old["hash"]  # defaults: same hash
    assert punch_hash({**new, "direction": "IN"}) != new["hash"]  # a set direction is in the hash
    device = register(hub)
    assert [r["status"] for r in upload(device, [old, new])["results"]] == ["accepted", "accepted"]
    stored = {p["seq"]: p for p in hub.export()}
    assert stored[1]["kind"] == "punch" and not stored[1]["direction"]
    assert (stored[2]["kind"], stored[2]["direction"], stored[2]["chain"]) == ("correction", "OUT", "ok")
    assert old["prev_hash"] == GENESIS_HASH


def test_the_latest_directed_punch_is_read_from_an_index_not_by_walking_the_person_s_punches(fresh_store) -> None:
    """The IN/OUT rule reads it at every punch: it must not grow with how many punches a person has made."""
    from kiosk.base.timeutil import iso_utc
    from kiosk.store.punches import LATEST_DIRECTED_SQL, PunchDraft
    fresh_store.roster.add("E1", "Wang Li")
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    for hour, direction in enumerate(("IN", "", "OUT", "")):
        fresh_store.punches.append(PunchDraft("E1", "card", "verified", when=start + timedelta(hours=hour),
                                              direction=direction))
    since, until = iso_utc(start), iso_utc(start + timedelta(hours=5))
    assert fresh_store.punches.latest_with_direction("E1", since, until).ts_utc == iso_utc(start + timedelta(hours=2))
    plan = fresh_store.query(f"EXPLAIN QUERY PLAN {LATEST_DIRECTED_SQL}", ["E1", since, until])
    assert [row["detail"] for row in plan] == [
        "SEARCH punches USING INDEX punches_directed (employee_id=? AND ts_utc>? AND ts_utc<?)"]
