"""Signed webhooks from the hub's durable queue, over real HTTP to a verifying receiver, on SQLite and PostgreSQL.

The delivery engine runs in the test with a settable clock, so "the receiver is down for an hour" takes
no hour; the hub's own worker is off in these tests so nothing else delivers behind our back.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from outbound_support import FakeClock, Receiver, documented_verifier, punches, register, statuses, upload
from sync_support import CONSENT, TEST_MODEL, hub_config_data, start_hub

from sync.hub import devices
from sync.hub.config import validate_hub_config
from sync.hub.outbound import events, queue
from sync.hub.outbound.config import OutboundConfig
from sync.hub.outbound.engine import DeliveryEngine
from sync.hub.outbound.webhooks import WebhookSender, signature, signed_headers

ALL_TYPES = list(events.EVENT_TYPES)


@pytest.fixture
def quiet_hub(hub_backend, tmp_path, request):
    """A real hub whose own delivery worker is off."""
    data = hub_config_data(hub_backend, tmp_path, request)
    data["outbound"] = {"enabled": False}
    fixture = start_hub(validate_hub_config(data, "test", tmp_path))
    yield fixture
    fixture.hr.close()
    fixture.server.stop()


@pytest.fixture
def receiver():
    made = []

    def _make(secrets: list[str], **kwargs) -> Receiver:
        made.append(Receiver(secrets, **kwargs).start())
        return made[-1]

    yield _make
    for rec in made:
        rec.stop()


def engine_for(hub, clock: FakeClock, **settings) -> DeliveryEngine:
    config = OutboundConfig(**{"timeout_s": 5.0, "lease_s": 30.0, "backoff_initial_s": 5.0, "backoff_max_s": 300.0,
                               "max_attempts": 30, **settings})
    return DeliveryEngine(config, hub.db, {"webhook": WebhookSender(config.timeout_s)}, clock=clock,
                          rng=random.Random(7))


def drain(engine: DeliveryEngine, rounds: int = 200) -> None:
    """Run rounds until one finds nothing due (the clock does not move)."""
    for _ in range(rounds):
        if engine.run_once().attempted == 0:
            return
    raise AssertionError("the queue did not settle")


def hub_order(hub) -> list[tuple[str, str]]:
    return [(p["employee_id"], p["id"]) for p in hub.export()]


def test_signatures_follow_the_standard_webhooks_spec() -> None:
    # The published Standard Webhooks test vector (standard-webhooks reference libraries, README).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    verify = documented_verifier()
    other = queue.new_secret()
    body = b'{"specversion":"1.0"}'
    headers = signed_headers([other, secret], "evt-1", body)
    assert len(headers["webhook-signature"].split()) == 2, "both live secrets sign during a rotation"
    verify(secret, headers, body)
    verify(other, headers, body)
    with pytest.raises(ValueError, match="no valid signature"):
        verify(queue.new_secret(), headers, body)
    with pytest.raises(ValueError, match="no valid signature"):
        verify(secret, headers, body + b" ")
    old = signed_headers([secret], "evt-1", body, timestamp=int(time.time()) - 3600)
    with pytest.raises(ValueError, match="replay window"):
        verify(secret, old, body)


def test_punches_reach_a_verifying_receiver_in_order_per_employee(quiet_hub, receiver) -> None:
    sub = queue.add_subscription(quiet_hub.db, "webhook", "http://127.0.0.1:1/placeholder", ALL_TYPES)
    rec = receiver(sub.secrets)
    queue.add_subscription(quiet_hub.db, "webhook", rec.url, ALL_TYPES, sub_id=sub.id)
    device = register(quiet_hub.url, quiet_hub.code())
    for employee_id in ("E1", "E2", "E3"):
        quiet_hub.hire(employee_id)
    records = punches(["E1", "E2", "E1", "E3", "E2", "E1"])
    upload(device, records[:4])
    upload(device, records[2:])  # two repeats: stored once, announced once
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock)
    drain(engine)
    kinds = [(e["type"], e["subject"]) for e in rec.accepted]
    assert kinds.count(("attendance.punch.created", "E1")) == 3
    assert sorted(s for t, s in kinds if t == "attendance.employee.first_punch") == ["E1", "E2", "E3"]
    by_subject = rec.subjects_in_order()
    for employee in ("E1", "E2", "E3"):
        punch_ids = [pid for emp, pid in hub_order(quiet_hub) if emp == employee]
        created = [i for i in by_subject[employee] if i in punch_ids]
        assert created == punch_ids, "an employee's punches arrive in hub order"
        first = next(e for e in rec.accepted if e["type"] == events.FIRST_PUNCH and e["subject"] == employee)
        assert first["data"]["punch_id"] == punch_ids[0]
        assert by_subject[employee].index(first["id"]) == 1, "first_punch follows the first punch.created"
    punch_event = next(e for e in rec.accepted if e["type"] == events.PUNCH_CREATED)
    assert punch_event["specversion"] == "1.0" and punch_event["source"] == f"/devices/{device.device_id}"
    assert punch_event["datacontenttype"] == "application/json" and punch_event["data"]["id"] == punch_event["id"]
    assert "name" not in punch_event["data"]
    assert statuses(quiet_hub.db) == {"delivered": 9} and rec.duplicates == [] and rec.refused == []
    upload(device, punches(["E1"], start_seq=7, prev=records[-1]["hash"]))
    clock.catch_up()  # the engine's clock stands still; the new event is due at the hub's real time
    drain(engine)
    assert [e["type"] for e in rec.accepted[9:]] == ["attendance.punch.created"], "first_punch is sent once"


def test_receiver_down_for_an_hour_then_everything_arrives_in_order(quiet_hub, receiver) -> None:
    rec = receiver([])
    sub = queue.add_subscription(quiet_hub.db, "webhook", rec.url, [events.PUNCH_CREATED])
    rec.secrets = sub.secrets
    port = rec.port
    rec.stop()
    device = register(quiet_hub.url, quiet_hub.code())
    records = punches(["E1", "E2", "E1", "E2", "E3"] * 4)
    upload(device, records)
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock)
    for _ in range(720):  # one hour in 5-second steps
        engine.run_once()
        clock.advance(5)
    rows = queue.list_deliveries(quiet_hub.db, limit=100)
    heads = {r["order_key"]: r for r in reversed(rows)}
    heads = [r for r in rows if r["attempts"] > 0]
    assert {r["order_key"] for r in heads} == {"E1", "E2", "E3"}, "only each employee's oldest event is tried"
    assert all(r["status"] == "pending" for r in rows), "nothing parked, nothing lost"
    attempts = [r["attempts"] for r in heads]
    # 5 s doubling (with jitter) capped at 300 s: about 15 tries in an hour, not 720 and not 3
    assert all(8 <= a <= 25 for a in attempts), attempts
    assert all("ConnectError" in r["last_error"] for r in heads)
    rec.start(port)
    clock.advance(300)
    drain(engine)
    assert len(rec.accepted) == 20 and statuses(quiet_hub.db) == {"delivered": 20}
    for employee, ids in rec.subjects_in_order().items():
        assert ids == [pid for emp, pid in hub_order(quiet_hub) if emp == employee]


def test_a_bad_record_is_parked_with_its_error_and_never_blocks_the_rest(quiet_hub, receiver) -> None:
    poison: set[str] = set()
    rec = receiver([], answer=lambda e: (400, 0) if e["id"] in poison else (200, 0))
    sub = queue.add_subscription(quiet_hub.db, "webhook", rec.url, [events.PUNCH_CREATED, events.FIRST_PUNCH])
    rec.secrets = sub.secrets
    device = register(quiet_hub.url, quiet_hub.code())
    records = punches(["E1", "E2", "E1", "E2"])
    poison.add(records[0]["id"])
    upload(device, records)
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock, max_attempts=3)
    drain(engine)
    assert {e["subject"] for e in rec.accepted} == {"E2"}, "E2 is not held up by E1's bad record"
    for _ in range(3):
        clock.advance(400)
        drain(engine)
    parked = queue.list_deliveries(quiet_hub.db, status="parked")
    assert [(p["event_id"], p["attempts"]) for p in parked] == [(records[0]["id"], 3)]
    assert parked[0]["last_error"].startswith("HTTP 400")
    e1 = [e["id"] for e in rec.accepted if e["subject"] == "E1"]
    assert records[2]["id"] in e1, "E1's later events go on once the bad one is parked"
    poison.clear()
    assert queue.retry(quiet_hub.db, [], all_parked=True) == 1
    drain(engine)
    assert records[0]["id"] in [e["id"] for e in rec.accepted]
    assert statuses(quiet_hub.db) == {"delivered": 6}


def test_timeouts_and_a_slow_receiver(quiet_hub, receiver) -> None:
    stalled: set[str] = set()
    rec = receiver([], answer=lambda e: (200, 3.0 if e["subject"] in stalled else 0.2))
    sub = queue.add_subscription(quiet_hub.db, "webhook", rec.url, [events.PUNCH_CREATED])
    rec.secrets = sub.secrets
    device = register(quiet_hub.url, quiet_hub.code())
    upload(device, punches(["E1", "E2", "E3"]))
    stalled.add("E1")
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock, timeout_s=1.0, lease_s=10.0)
    drain(engine)
    assert sorted(e["subject"] for e in rec.accepted) == ["E2", "E3"], "slow but in time is delivered"
    [late] = queue.list_deliveries(quiet_hub.db, status="pending")
    assert "no answer within 1 s" in late["last_error"] and late["attempts"] == 1
    stalled.clear()
    clock.advance(60)
    drain(engine)
    # The stalled attempt may still have been accepted when it finally finished: then this is a repeat.
    assert "E1" in {e["subject"] for e in rec.accepted} and statuses(quiet_hub.db) == {"delivered": 3}


def test_a_wrong_secret_is_refused_until_the_secret_is_rotated(quiet_hub, receiver) -> None:
    rec = receiver([queue.new_secret()])  # the receiver was given a secret the hub does not sign with
    sub = queue.add_subscription(quiet_hub.db, "webhook", rec.url, [events.PUNCH_CREATED])
    device = register(quiet_hub.url, quiet_hub.code())
    upload(device, punches(["E1"]))
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock)
    drain(engine)
    assert rec.accepted == [] and rec.refused == ["no valid signature"]
    assert queue.list_deliveries(quiet_hub.db)[0]["last_error"] == "HTTP 401"
    fresh = queue.rotate_secret(quiet_hub.db, sub.id)
    rec.secrets = [fresh]  # the receiver now has the new secret; the old one still signs too
    clock.advance(60)
    drain(engine)
    assert len(rec.accepted) == 1
    live = queue.subscriptions(quiet_hub.db)[sub.id].secrets
    assert live == [fresh, sub.secrets[0]]
    queue.rotate_secret(quiet_hub.db, sub.id, drop_old=True)
    assert queue.subscriptions(quiet_hub.db)[sub.id].secrets == [fresh]


def test_a_delivery_cut_short_is_sent_again_with_the_same_id_and_deduplicated(quiet_hub, receiver) -> None:
    rec = receiver([])
    sub = queue.add_subscription(quiet_hub.db, "webhook", rec.url, [events.PUNCH_CREATED])
    rec.secrets = sub.secrets
    device = register(quiet_hub.url, quiet_hub.code())
    upload(device, punches(["E1", "E1"]))
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock)
    # A worker claims and sends, then dies before recording the outcome (as on SIGKILL).
    [first, _] = queue.claim(quiet_hub.db, clock(), engine.config.lease_s, "dead-worker", 10, 10)
    WebhookSender(5.0).deliver(queue.subscriptions(quiet_hub.db)[sub.id], first.event)
    drain(engine)
    assert len(rec.accepted) == 1, "leased rows wait for the dead worker's lease"
    clock.advance(engine.config.lease_s + 1)
    drain(engine)
    assert [e["id"] for e in rec.accepted] == [first.event["id"], rec.accepted[1]["id"]]
    assert rec.duplicates == [first.event["id"]], "at least once; the receiver drops the repeat by webhook-id"
    assert statuses(quiet_hub.db) == {"delivered": 2}


def test_device_and_enrolment_events(quiet_hub, receiver) -> None:
    rec = receiver([])
    sub = queue.add_subscription(quiet_hub.db, "webhook", rec.url, ALL_TYPES)
    rec.secrets = sub.secrets
    device = register(quiet_hub.url, quiet_hub.code())
    vec = np.random.default_rng(1).normal(size=512)
    new_hire = {"employee_id": "E9", "name": "Li Lei", "branches": ["B001"], "consent": CONSENT,
                "templates": [{"model_id": TEST_MODEL, "vector": (vec / np.linalg.norm(vec)).tolist()}]}
    assert quiet_hub.hr.post("/v1/hr/employees", json=new_hire).status_code == 201
    roster = device.get("/v1/device/roster", params={"cursor": 0}).json()
    beat = {"software_version": "0.1.0", "model_id": TEST_MODEL, "template_dim": 512, "backlog": 0,
            "clock_state": "verified", "roster_cursor": roster["cursor"]}
    assert device.post("/v1/device/heartbeat", json=beat).status_code == 200
    assert device.post("/v1/device/heartbeat", json=beat).status_code == 200
    clock = FakeClock()
    engine = engine_for(quiet_hub, clock, device_offline_after_s=600)
    drain(engine)
    assert [(e["type"], e["subject"]) for e in rec.accepted] == [("attendance.employee.enrolled", "E9")]
    assert rec.accepted[0]["data"]["branch"] == "B001" and rec.accepted[0]["data"]["templates"] == 1
    clock.advance(601)
    drain(engine)
    assert rec.accepted[-1]["type"] == "attendance.device.offline"
    assert rec.accepted[-1]["subject"] == f"device:{device.device_id}"
    clock.advance(601)
    drain(engine)
    assert [e["type"] for e in rec.accepted].count("attendance.device.offline") == 1, "offline is said once"
    assert device.post("/v1/device/heartbeat", json=beat).status_code == 200
    records = punches(["E9", "E9", "E9"])
    upload(device, [records[0], records[2]])  # seq 2 is missing: a gap in the chain
    drain(engine)
    device_kinds = [e["type"] for e in rec.accepted if e["subject"].startswith("device:")]
    assert device_kinds[:2] == ["attendance.device.offline", "attendance.device.online"]
    issue = next(e for e in rec.accepted if e["type"] == "attendance.chain.issue")
    assert issue["data"]["kind"] == "gap" and issue["data"]["seq_from"] == 2
    assert devices.device_status(quiet_hub.db, device.device_id).open_issues == 1


def test_since_time_filters_the_pull_feed(quiet_hub) -> None:
    device = register(quiet_hub.url, quiet_hub.code())
    records = punches(["E1", "E2", "E3"])
    upload(device, records)
    resp = quiet_hub.hr.get("/v1/hr/punches", params={"since": 0, "since_time": records[1]["ts_utc"]})
    assert resp.status_code == 200
    assert [line.split('"employee_id": "')[1][:2] for line in resp.text.splitlines()] == ["E2", "E3"]
    bad = quiet_hub.hr.get("/v1/hr/punches", params={"since_time": "yesterday"})
    assert bad.status_code == 422 and "neither a date nor an ISO time" in bad.json()["error"]["message"]


def test_enrolled_is_said_once_per_employee_and_branch(quiet_hub, receiver) -> None:
    """Two kiosks of a branch, repeated heartbeats, new templates later, a second branch, a leaver re-hired:
    one ``employee.enrolled`` per (employee, branch) — the key is not the kiosk and not the roster version."""
    rec = receiver([])
    rec.secrets = queue.add_subscription(quiet_hub.db, "webhook", rec.url, [events.ENROLLED]).secrets
    kiosks = [register(quiet_hub.url, quiet_hub.code(branch), name) for branch, name in
              (("B001", "front"), ("B001", "back"), ("B002", "annex"))]
    rng = np.random.default_rng(3)

    def template() -> dict:
        vec = rng.normal(size=512)
        return {"model_id": TEST_MODEL, "vector": (vec / np.linalg.norm(vec)).tolist()}

    def beat_all() -> None:
        for kiosk in kiosks:
            cursor = kiosk.get("/v1/device/roster", params={"cursor": 0}).json()["cursor"]
            beat = {"software_version": "0.1.0", "model_id": TEST_MODEL, "template_dim": 512, "backlog": 0,
                    "clock_state": "verified", "roster_cursor": cursor}
            for _ in range(2):
                assert kiosk.post("/v1/device/heartbeat", json=beat).status_code == 200

    hire = {"employee_id": "E7", "name": "Wang Fang", "branches": ["B001"], "templates": [template()],
            "consent": CONSENT}
    assert quiet_hub.hr.post("/v1/hr/employees", json=hire).status_code == 201
    beat_all()
    assert quiet_hub.hr.patch("/v1/hr/employees/E7", json={"templates": [template()],
                                                           "branches": ["B001", "B002"]}).status_code == 200
    beat_all()
    assert quiet_hub.hr.post("/v1/hr/employees/E7/terminate", json={"reason": "left"}).status_code == 200
    beat_all()
    assert quiet_hub.hr.post("/v1/hr/employees", json={**hire, "templates": [template()]}).status_code == 201
    beat_all()
    drain(engine_for(quiet_hub, FakeClock()))
    said = sorted((e["subject"], e["data"]["branch"]) for e in rec.accepted)
    assert said == [("E7", "B001"), ("E7", "B002")]
