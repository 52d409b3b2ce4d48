"""The hub's punch ingest called directly on a real hub database (SQLite and PostgreSQL), no HTTP: every verdict
(accepted, duplicate, refused), the chain (gaps, late punches, breaks, forks), signatures, the hub's flags, the
device issues and the caller's ``within`` writes, with exact values. Fast enough to mutation-test ingest with
(setup.cfg [mutate]); tests/test_hub_api.py and the others check the same decisions over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sync_support import TEST_DIM, TEST_MODEL
from test_hub_input_rules import enrolment
from test_sync_protocol import chain

from kiosk.base.record import GENESIS_HASH, punch_hash
from kiosk.base.signing import key_id, new_private_key, public_key, sign_hash
from kiosk.base.text import DB_INT_MAX
from kiosk.base.timeutil import iso_utc, utc_now
from sync.errors import Unauthorized
from sync.hub import devices, people
from sync.hub.config import HubConfig
from sync.hub.db import open_hub_db
from sync.hub.devices import Device
from sync.hub.ingest import (
    PUNCH_COLUMNS,
    REJECT_BODY_MAX_CHARS,
    REJECTS_KEPT_PER_DEVICE,
    _clock_ahead,
    check_records,
    ingest,
)
from sync.hub.outbound.events import FIRST_PUNCH, PUNCH_CREATED
from sync.hub.outbound.queue import add_subscription
from sync.protocol import EmployeeIn, PunchIn, RegisterRequest

AHEAD_S = 300.0
CONFLICT = "this punch id is already stored with different content"


@pytest.fixture
def db(hub_config: HubConfig) -> Iterator[Any]:
    """A fresh, migrated hub database (no server)."""
    hub_db = open_hub_db(hub_config.database, migrate=True)
    yield hub_db
    hub_db.close()


def new_device(db: Any, branch: str = "B001", key: bytes | None = None, chain_seq: int = 0,
               chain_hash: str = GENESIS_HASH) -> Device:
    """A device registered with a one-time code, as `POST /v1/device/register` does it."""
    req = RegisterRequest(code=devices.create_code(db, branch, 1.0)["code"], device_name=f"kiosk-{branch}",
                          software_version="0.1.0", model_id=TEST_MODEL, template_dim=TEST_DIM, chain_seq=chain_seq,
                          chain_hash=chain_hash, public_key=public_key(key) if key else None)
    return devices.register(db, req)[0]


def hire(db: Any, employee_id: str, branch: str = "B001") -> None:
    people.create_employee(db, EmployeeIn(employee_id=employee_id, name=f"Person {employee_id}", branches=[branch]),
                           people.Templates([], 0, [], []))


def signed(records: list[dict], key: bytes) -> list[dict]:
    return [{**rec, "signature": sign_hash(key, rec["hash"])} for rec in records]


def rehashed(rec: dict, **changes: Any) -> dict:
    """``rec`` with other content, correctly hashed again (a rewritten record, not a corrupted one)."""
    out = {**rec, **changes}
    out["hash"] = punch_hash({k: v for k, v in out.items() if k not in ("hash", "signature")})
    return out


def verdicts(answer: Any) -> list[tuple[str, int | None, str, str]]:
    return [(r.id, r.seq, r.status, r.reason) for r in answer.results]


def punches(db: Any) -> list[dict]:
    with db.transaction(write=False) as tx:
        return tx.rows(f"SELECT {', '.join(PUNCH_COLUMNS)} FROM punches ORDER BY hub_seq")


def chains(db: Any) -> dict[int, str]:
    return {p["seq"]: p["chain"] for p in punches(db)}


def device_row(db: Any, device_id: str) -> dict:
    with db.transaction(write=False) as tx:
        return tx.row("SELECT chain_seq, chain_hash, punches, duplicates, rejected, last_seen_utc FROM devices "
                      "WHERE id = ?", [device_id])


def issues(db: Any, device_id: str, open_only: bool = True) -> list[tuple]:
    """(kind, seq_from, seq_to, detail) of a device's chain issues (not those about one person), open ones by
    default."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT kind, seq_from, seq_to, detail, resolved_utc FROM device_issues WHERE device_id = ? "
                       "AND kind <> 'chain_start' AND employee_id IS NULL ORDER BY kind, seq_from, id", [device_id])
    return [(r["kind"], r["seq_from"], r["seq_to"], r["detail"]) for r in rows
            if not open_only or r["resolved_utc"] is None]


def spans(db: Any, device_id: str) -> list[tuple[str, int, int]]:
    return [issue[:3] for issue in issues(db, device_id)]


def rejects(db: Any, device_id: str) -> list[dict]:
    with db.transaction(write=False) as tx:
        return tx.rows("SELECT punch_id, seq, reason, body, received_utc FROM punch_rejects WHERE device_id = ? "
                       "ORDER BY id", [device_id])


# -- new punches, repeats and conflicts ------------------------------------------------------

def test_new_punches_are_stored_as_sent_with_the_hubs_columns(db) -> None:
    key = new_private_key()
    device = new_device(db, key=key)
    hire(db, "E1")
    first = chain(1, direction="IN", kind="correction", author="HR Ann")
    second = chain(1, start_seq=2, prev=first[0]["hash"], direction="OUT")
    third = chain(1, start_seq=3, prev=second[0]["hash"])
    records = signed(first + second + third, key)
    answer = ingest(db, device, records, AHEAD_S)
    assert verdicts(answer) == [(r["id"], r["seq"], "accepted", "") for r in records]
    assert (answer.accepted, answer.duplicates, answer.rejected, answer.chain_seq) == (3, 0, 0, 3)
    state = device_row(db, device.id)
    assert (state["chain_seq"], state["chain_hash"], state["punches"], state["duplicates"], state["rejected"]) == (
        3, records[2]["hash"], 3, 0, 0)
    rows = punches(db)
    assert [r["hub_seq"] for r in rows] == [1, 2, 3]
    for row, rec in zip(rows, records, strict=True):
        sent = {k: v for k, v in rec.items() if k not in ("direction", "author", "kind", "signature")}
        assert {k: row[k] for k in sent} == sent
        assert (row["device_id"], row["branch"], row["received_utc"], row["chain"], row["hub_flags"]) == (
            device.id, "B001", state["last_seen_utc"], "ok", "")
        assert (row["signature"], row["key_id"]) == (rec["signature"], key_id(public_key(key)))
    # No direction is stored as NULL; a correction keeps its kind and author.
    assert [(r["direction"], r["kind"], r["author"]) for r in rows] == [
        ("IN", "correction", "HR Ann"), ("OUT", "punch", None), (None, "punch", None)]
    # The hub's numbering goes on with the next batch.
    more = signed(chain(1, start_seq=4, prev=records[2]["hash"]), key)
    assert ingest(db, device, more, AHEAD_S).chain_seq == 4
    assert [r["hub_seq"] for r in punches(db)] == [1, 2, 3, 4]


def test_new_punches_queue_their_events_as_stored(db) -> None:
    sub = add_subscription(db, "webhook", "http://127.0.0.1:9/hook", [PUNCH_CREATED, FIRST_PUNCH])
    device = new_device(db)
    hire(db, "E1")
    records = chain(2)
    ingest(db, device, records, AHEAD_S)
    with db.transaction(write=False) as tx:
        events = tx.rows("SELECT e.type, e.subject, e.data FROM outbound_events e JOIN outbound_deliveries d "
                         "ON d.event_id = e.id WHERE d.subscription_id = ? ORDER BY d.id", [sub.id])
        first = tx.rows("SELECT employee_id, punch_id, hub_seq FROM first_punches")
    assert [(e["type"], e["subject"]) for e in events] == [(PUNCH_CREATED, "E1"), (FIRST_PUNCH, "E1"),
                                                           (PUNCH_CREATED, "E1")]
    stored = punches(db)
    assert [json.loads(events[i]["data"]) for i in (0, 2)] == stored
    assert first == [{"employee_id": "E1", "punch_id": records[0]["id"], "hub_seq": 1}]


def test_a_resend_is_a_duplicate_and_other_content_under_a_known_id_is_refused_and_raised(db) -> None:
    device = new_device(db)
    records = chain(3)
    ingest(db, device, records, AHEAD_S)
    rewritten = rehashed(records[1], employee_id="E2")
    following = chain(1, start_seq=4, prev=records[2]["hash"])[0]
    answer = ingest(db, device, [rewritten, records[2], following, records[0]], AHEAD_S)
    assert verdicts(answer) == [(rewritten["id"], 2, "rejected", CONFLICT), (records[2]["id"], 3, "duplicate", ""),
                                (following["id"], 4, "accepted", ""), (records[0]["id"], 1, "duplicate", "")]
    assert (answer.accepted, answer.duplicates, answer.rejected, answer.chain_seq) == (1, 2, 1, 4)
    assert issues(db, device.id) == [("id_conflict", 2, 2, f"punch {rewritten['id']}: {CONFLICT}")]
    assert [(p["seq"], p["employee_id"]) for p in punches(db)] == [(1, "E1"), (2, "E1"), (3, "E1"), (4, "E1")]
    kept = rejects(db, device.id)
    assert [(k["punch_id"], k["seq"], k["reason"]) for k in kept] == [(rewritten["id"], 2, CONFLICT)]
    assert json.loads(kept[0]["body"]) == PunchIn.model_validate(rewritten).model_dump()
    state = device_row(db, device.id)
    assert (state["punches"], state["duplicates"], state["rejected"]) == (4, 2, 1)
    assert kept[0]["received_utc"] == state["last_seen_utc"]


def test_the_same_id_from_another_device_is_a_conflict(db) -> None:
    first, second = new_device(db), new_device(db)
    record = chain(1)[0]
    assert verdicts(ingest(db, first, [record], AHEAD_S)) == [(record["id"], 1, "accepted", "")]
    assert verdicts(ingest(db, second, [record], AHEAD_S)) == [(record["id"], 1, "rejected", CONFLICT)]
    assert spans(db, second.id) == [("id_conflict", 1, 1)] and spans(db, first.id) == []
    assert device_row(db, second.id)["chain_seq"] == 0


def test_a_record_twice_in_one_batch_is_stored_once_and_keeps_no_chain_warning(db) -> None:
    device = new_device(db)
    records = chain(3)
    answer = ingest(db, device, [records[2], records[2]], AHEAD_S)  # seq 1-2 missing: a chain warning
    assert verdicts(answer) == [(records[2]["id"], 3, "accepted", "chain: after_gap"),
                                (records[2]["id"], 3, "duplicate", "")]
    assert (answer.accepted, answer.duplicates) == (1, 1)
    assert chains(db) == {3: "after_gap"}


def test_a_batch_with_nothing_new_leaves_the_chain_as_it_was(db) -> None:
    device = new_device(db)
    records = chain(2)
    ingest(db, device, records, AHEAD_S)
    answer = ingest(db, device, [records[0], {"id": "x"}], AHEAD_S)
    assert [r.status for r in answer.results] == ["duplicate", "rejected"]
    assert (answer.accepted, answer.duplicates, answer.rejected, answer.chain_seq) == (0, 1, 1, 2)
    state = device_row(db, device.id)
    assert (state["chain_seq"], state["chain_hash"], state["punches"]) == (2, records[1]["hash"], 2)


def test_a_revoked_or_unknown_device_stores_nothing(db) -> None:
    device = new_device(db)
    devices.revoke_device(db, device.id)
    for who in (device, Device("dev_000000000000", "B001", "gone", None, None)):
        with pytest.raises(Unauthorized) as err:
            ingest(db, who, chain(1), AHEAD_S)
        assert (err.value.what, err.value.fix) == ("this device was revoked",
                                                   "Register the kiosk again with a new code.")
    assert punches(db) == [] and rejects(db, device.id) == []


# -- per-record checks -----------------------------------------------------------------------

def test_each_bad_record_gets_its_own_reason_and_the_rest_is_stored(db) -> None:
    device = new_device(db)
    good = chain(3)
    altered = {**good[1], "employee_id": "E2"}  # changed after it was hashed
    bad_field = {**good[1], "score": 2.0}
    answer = ingest(db, device, [good[0], altered, "junk", bad_field, good[1], good[2]], AHEAD_S)
    assert verdicts(answer) == [
        (good[0]["id"], 1, "accepted", ""),
        (good[1]["id"], 2, "rejected", "hash does not match the record: it was altered after it was stored"),
        ("", None, "rejected", "record: Input should be a valid dictionary or instance of PunchIn"),
        (good[1]["id"], 2, "rejected", "score: Input should be less than or equal to 1"),
        (good[1]["id"], 2, "accepted", ""), (good[2]["id"], 3, "accepted", "")]
    assert (answer.accepted, answer.duplicates, answer.rejected) == (3, 0, 3)
    kept = rejects(db, device.id)
    assert [(k["punch_id"], k["seq"], k["body"]) for k in kept] == [
        (good[1]["id"], 2, json.dumps(altered)), ("", None, '"junk"'), (good[1]["id"], 2, json.dumps(bad_field))]
    assert device_row(db, device.id)["rejected"] == 3


def test_check_records_keeps_valid_records_with_their_place_in_the_batch() -> None:
    good = chain(2)
    checked = check_records([good[0], {"id": 5}, good[1]])
    assert [(index, rec.id) for index, rec in checked.valid] == [(0, good[0]["id"]), (2, good[1]["id"])]
    assert checked.results[0] is None and checked.results[2] is None
    assert (checked.results[1].id, checked.results[1].seq, checked.results[1].status) == ("", None, "rejected")


@pytest.mark.parametrize(("item", "ident", "seq"), [
    ({"id": "p" * 70, "seq": DB_INT_MAX}, "p" * 64, DB_INT_MAX),
    ({"id": "a\x00b", "seq": -DB_INT_MAX}, "a\\x00b", -DB_INT_MAX),
    ({"id": "\x00" * 20, "seq": 3}, "\\x00" * 16, 3),
    ({"id": 7, "seq": DB_INT_MAX + 1}, "", None),
    ({"seq": -DB_INT_MAX - 1}, "", None),
    ({"seq": True}, "", None),
    ({"seq": 2.0}, "", None),
    (["id", "seq"], "", None),
])
def test_a_refused_records_id_and_seq_are_kept_as_far_as_they_can_be_stored(item, ident: str, seq) -> None:
    result = check_records([item]).results[0]
    assert (result.id, result.seq, result.status) == (ident, seq, "rejected")
    assert check_records([item]).rejects[0][:2] == (ident, seq)


def test_a_refused_records_body_is_kept_cut_and_as_text() -> None:
    long = {"id": "x", "note": "n" * 5000}
    odd = {"id": "y", "when": datetime(2026, 1, 5, 8, 0)}  # not JSON: a direct caller's object, kept as text
    checked = check_records([long, odd])
    bodies = [body for *_, body in checked.rejects]
    assert bodies[0] == json.dumps(long)[:REJECT_BODY_MAX_CHARS] and len(bodies[0]) == REJECT_BODY_MAX_CHARS
    assert bodies[1] == '{"id": "y", "when": "2026-01-05 08:00:00"}'


def test_rejects_are_kept_per_device_up_to_the_limit_newest_first(db) -> None:
    device, other = new_device(db), new_device(db)
    ingest(db, other, [{"id": "other"}], AHEAD_S)
    junk = [{"id": f"j{i:04d}"} for i in range(REJECTS_KEPT_PER_DEVICE + 5)]
    assert ingest(db, device, junk, AHEAD_S).rejected == REJECTS_KEPT_PER_DEVICE + 5
    assert [k["punch_id"] for k in rejects(db, device.id)] == [j["id"] for j in junk[5:]]
    ingest(db, device, [{"id": "late1"}, {"id": "late2"}], AHEAD_S)
    assert [k["punch_id"] for k in rejects(db, device.id)] == [j["id"] for j in junk[7:]] + ["late1", "late2"]
    assert [k["punch_id"] for k in rejects(db, other.id)] == ["other"]
    assert device_row(db, device.id)["rejected"] == REJECTS_KEPT_PER_DEVICE + 7


# -- signatures ------------------------------------------------------------------------------

def test_each_record_must_carry_a_valid_signature_of_the_devices_key(db) -> None:
    key = new_private_key()
    device = new_device(db, key=key)
    hire(db, "E1")
    kid = key_id(public_key(key))
    records = signed(chain(5), key)
    forged = records[1]["signature"][:-2] + ("00" if not records[1]["signature"].endswith("00") else "11")
    batch = [records[0], {**records[1], "signature": forged}, {**records[2], "signature": ""},
             {**records[3], "signature": sign_hash(new_private_key(), records[3]["hash"])}, records[4]]
    answer = ingest(db, device, batch, AHEAD_S)
    bad = (f"signature does not verify with this device's key {kid}: the record was altered or not signed by this "
           "kiosk")
    unsigned = f"unsigned: this device registered signing key {kid}, so each punch must carry its signature"
    assert verdicts(answer) == [(records[0]["id"], 1, "accepted", ""), (records[1]["id"], 2, "rejected", bad),
                                (records[2]["id"], 3, "rejected", unsigned), (records[3]["id"], 4, "rejected", bad),
                                (records[4]["id"], 5, "accepted", "chain: after_gap")]
    kept = rejects(db, device.id)
    assert [(k["punch_id"], k["seq"], k["reason"]) for k in kept] == [
        (records[1]["id"], 2, bad), (records[2]["id"], 3, unsigned), (records[3]["id"], 4, bad)]
    assert json.loads(kept[1]["body"]) == PunchIn.model_validate(batch[2]).model_dump()
    assert [(p["seq"], p["hub_flags"], p["key_id"]) for p in punches(db)] == [(1, "", kid), (5, "", kid)]


def test_a_device_without_a_key_is_heard_and_flagged_unsigned_or_by_its_proof(db) -> None:
    device = new_device(db)
    hire(db, "E1")
    records = chain(2)
    ingest(db, device, [records[0]], AHEAD_S)
    ingest(db, device, [{**records[1], "signature": "ab" * 64}], AHEAD_S, proof="webauthn")
    assert [(p["hub_flags"], p["signature"], p["key_id"]) for p in punches(db)] == [
        ("unsigned", "", ""), ("webauthn", "", "")]


# -- the chain -------------------------------------------------------------------------------

def test_records_are_walked_in_seq_order_whatever_order_they_come_in(db) -> None:
    device = new_device(db)
    records = chain(3)
    answer = ingest(db, device, records[::-1], AHEAD_S)
    assert [r.reason for r in answer.results] == ["", "", ""] and answer.chain_seq == 3
    assert chains(db) == {1: "ok", 2: "ok", 3: "ok"} and spans(db, device.id) == []


def test_a_gap_and_a_break_going_forward_are_raised(db) -> None:
    device = new_device(db)
    records = chain(6)
    forged = chain(1, start_seq=6, prev="f" * 64)[0]
    answer = ingest(db, device, [records[0], records[3], records[4], forged], AHEAD_S)
    assert [r.reason for r in answer.results] == ["", "chain: after_gap", "", "chain: break"]
    assert chains(db) == {1: "ok", 4: "after_gap", 5: "ok", 6: "break"}
    assert issues(db, device.id) == [
        ("chain_break", 6, 6, "prev_hash of seq 6 does not match the hash of seq 5: a punch was altered or replaced"),
        ("gap", 2, 3, "2 punch(es) not received")]
    state = device_row(db, device.id)
    assert (answer.chain_seq, state["chain_seq"], state["chain_hash"]) == (6, 6, forged["hash"])


def test_a_late_punch_splits_its_gap_and_links_both_ways(db) -> None:
    device = new_device(db)
    records = chain(7)
    ingest(db, device, [records[0], records[6]], AHEAD_S)
    assert issues(db, device.id) == [("gap", 2, 6, "5 punch(es) not received")]
    # Two late punches in one batch: the second falls in a part of the gap the first one left.
    answer = ingest(db, device, [records[3], records[5]], AHEAD_S)
    assert [r.reason for r in answer.results] == ["chain: late", "chain: late"]
    assert answer.chain_seq == 7 and device_row(db, device.id)["chain_seq"] == 7
    assert spans(db, device.id) == [("gap", 2, 3), ("gap", 5, 5)]
    assert [i[:3] for i in issues(db, device.id, open_only=False) if i[0] == "gap"] == [
        ("gap", 2, 6), ("gap", 2, 3), ("gap", 5, 5)]
    # seq 6 links to the stored seq 7, which was after a gap: the chain up to it is now whole.
    assert chains(db) == {1: "ok", 7: "ok", 4: "late", 6: "late"}
    answer = ingest(db, device, [records[1], records[2], records[4]], AHEAD_S)
    assert [r.reason for r in answer.results] == ["chain: late"] * 3
    assert spans(db, device.id) == []
    assert chains(db) == {1: "ok", 7: "ok", 4: "late", 6: "late", 2: "late", 3: "late", 5: "late"}


def test_a_late_punch_that_does_not_link_is_a_break_named_on_each_side(db) -> None:
    device = new_device(db)
    records = chain(5)
    ingest(db, device, [records[0], records[2], records[4]], AHEAD_S)
    assert spans(db, device.id) == [("gap", 2, 2), ("gap", 4, 4)]
    forged = chain(1, start_seq=2, prev="f" * 64)[0]  # fills the gap, links to neither side
    answer = ingest(db, device, [forged], AHEAD_S)
    assert verdicts(answer) == [(forged["id"], 2, "accepted", "chain: break")]
    assert issues(db, device.id) == [
        ("chain_break", 2, 2, "late punch seq 2 does not link to seq 1"),
        ("chain_break", 3, 3, "seq 3 does not link to the late punch seq 2"), ("gap", 4, 4, "1 punch(es) not received")]
    assert chains(db) == {1: "ok", 3: "after_gap", 5: "after_gap", 2: "break"}
    # A genuine late punch links back to seq 3 but not forward to a forged seq 5: only the forward link is named.
    mine = chain(4)
    ahead = chain(1, start_seq=5, prev="e" * 64)[0]
    other = new_device(db)
    ingest(db, other, [*mine[:3], ahead], AHEAD_S)
    answer = ingest(db, other, [mine[3]], AHEAD_S)
    assert verdicts(answer) == [(mine[3]["id"], 4, "accepted", "chain: late")]
    assert spans(db, other.id) == [("chain_break", 5, 5)]
    assert {p["seq"]: p["chain"] for p in punches(db) if p["device_id"] == other.id} == {
        1: "ok", 2: "ok", 3: "ok", 5: "after_gap", 4: "late"}


def test_a_punch_below_the_head_outside_any_gap_is_a_fork(db) -> None:
    device = new_device(db)
    records = chain(3)
    ingest(db, device, records, AHEAD_S)
    fork = chain(1, start_seq=2, prev=records[0]["hash"], employee_id="E2")[0]
    answer = ingest(db, device, [fork], AHEAD_S)
    assert verdicts(answer) == [(fork["id"], 2, "accepted", "chain: fork")]
    assert issues(db, device.id) == [("fork", 2, 2, f"a second, different punch {fork['id']} has seq 2: the kiosk's "
                                                    "store was restored or cloned")]
    assert answer.chain_seq == 3 and device_row(db, device.id)["chain_hash"] == records[2]["hash"]


@pytest.mark.parametrize("one_batch", [False, True], ids=["head_stored_first", "head_in_the_same_batch"])
def test_a_second_punch_at_the_heads_seq_is_a_fork(db, one_batch: bool) -> None:
    device = new_device(db)
    records = chain(2)
    fork = chain(1, start_seq=2, prev=records[0]["hash"], employee_id="E2")[0]
    if one_batch:
        answers = ingest(db, device, [*records, fork], AHEAD_S).results
    else:
        answers = [*ingest(db, device, records, AHEAD_S).results, *ingest(db, device, [fork], AHEAD_S).results]
    assert [r.reason for r in answers] == ["", "", "chain: fork"]
    assert spans(db, device.id) == [("fork", 2, 2)]
    assert device_row(db, device.id)["chain_hash"] == records[1]["hash"]


@pytest.mark.parametrize("one_batch", [False, True], ids=["fork_stored_first", "fork_in_the_same_batch"])
def test_a_late_punch_never_links_to_a_fork(db, one_batch: bool) -> None:
    records = chain(5)
    device = new_device(db, chain_seq=2, chain_hash=records[1]["hash"])  # seq 1-2 were delivered elsewhere
    fork = chain(1, start_seq=2, prev=records[0]["hash"], employee_id="E2")[0]
    ingest(db, device, [records[4]], AHEAD_S)
    answers = ingest(db, device, [fork, records[2]], AHEAD_S).results if one_batch else [
        *ingest(db, device, [fork], AHEAD_S).results, *ingest(db, device, [records[2]], AHEAD_S).results]
    assert [(r.status, r.reason) for r in answers] == [("accepted", "chain: fork"), ("accepted", "chain: late")]
    assert spans(db, device.id) == [("fork", 2, 2), ("gap", 4, 4)]


# -- the hub's flags -------------------------------------------------------------------------

def test_a_punch_dated_ahead_of_the_hub_is_flagged_and_raised_once(db) -> None:
    device = new_device(db)
    hire(db, "E1")
    now = utc_now()
    records = chain(1, ts_utc=iso_utc(now))
    records += chain(1, start_seq=2, prev=records[-1]["hash"], ts_utc=iso_utc(now + timedelta(hours=2)))
    records += chain(1, start_seq=3, prev=records[-1]["hash"], ts_utc=iso_utc(now + timedelta(minutes=1)))
    records += chain(1, start_seq=4, prev=records[-1]["hash"], ts_utc=iso_utc(now + timedelta(hours=3, minutes=1)))
    ingest(db, device, records, AHEAD_S)
    assert [p["hub_flags"] for p in punches(db)] == ["unsigned", "clock_ahead,unsigned", "unsigned",
                                                     "clock_ahead,unsigned"]
    assert issues(db, device.id) == [("clock_ahead", 2, 4, "2 punch(es) dated up to 3.0 h after the hub received "
                                      "them: the kiosk's clock is ahead; the export flags them clock_ahead (check "
                                      "NTP/GPS on the kiosk)")]


def test_clock_ahead_starts_just_past_the_limit(db) -> None:
    device = new_device(db)
    now = "2026-01-05T08:00:00.000Z"
    at_limit = PunchIn.model_validate(chain(1, ts_utc="2026-01-05T08:05:00.000Z")[0])
    past = PunchIn.model_validate(chain(1, start_seq=2, ts_utc="2026-01-05T08:05:00.001Z")[0])
    with db.transaction() as tx:
        assert _clock_ahead(tx, device.id, [at_limit], now, AHEAD_S) == set()
        assert _clock_ahead(tx, device.id, [at_limit, past], now, AHEAD_S) == {past.id}
    # The issue names the furthest ahead, in hours to one decimal: 7380.5 s is 2.05014 h.
    further = PunchIn.model_validate(chain(1, start_seq=3, ts_utc="2026-01-05T10:03:00.500Z")[0])
    with db.transaction() as tx:
        assert _clock_ahead(tx, device.id, [past, further], now, AHEAD_S) == {past.id, further.id}
    assert [i[:3] for i in issues(db, device.id)] == [("clock_ahead", 2, 2), ("clock_ahead", 2, 3)]
    assert issues(db, device.id)[1][3].startswith("2 punch(es) dated up to 2.1 h after the hub received them")


def test_punches_for_people_off_the_roster_are_flagged_and_raised_per_person(db) -> None:
    device = new_device(db)
    hire(db, "E1")
    hire(db, "E2", "B002")
    hire(db, "E3")
    people.terminate_employee(db, "E3", "left")
    ids = ["E1", "E404", "E2", "E404", "E3"]
    records: list[dict] = []
    for employee_id in ids:
        records += chain(1, start_seq=len(records) + 1, prev=records[-1]["hash"] if records else GENESIS_HASH,
                         employee_id=employee_id)
    ingest(db, device, records, AHEAD_S)
    assert [p["hub_flags"] for p in punches(db)] == ["unsigned", "unsigned,unknown_employee", "unsigned,not_on_roster",
                                                     "unsigned,unknown_employee", "unsigned,not_on_roster"]
    with db.transaction(write=False) as tx:
        raised = tx.rows("SELECT kind, employee_id, seq_from, seq_to, detail FROM device_issues WHERE device_id = ? "
                         "AND resolved_utc IS NULL ORDER BY employee_id", [device.id])
    assert [tuple(r.values()) for r in raised] == [
        ("not_on_roster", "E2", 3, 3, "punches for E2, who is not on branch B001's roster: stored and flagged "
                                      "not_on_roster (assign them to the branch, or check the kiosk)"),
        ("not_on_roster", "E3", 5, 5, "punches for E3, who is not on branch B001's roster: stored and flagged "
                                      "not_on_roster (assign them to the branch, or check the kiosk)"),
        ("unknown_employee", "E404", 2, 4, "punches for E404, an id the hub does not know: stored and flagged "
                                           "unknown_employee (create the employee, or check the kiosk)")]


def person_spans(db: Any, device_id: str) -> list[tuple]:
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT kind, employee_id, seq_from, seq_to, resolved_utc FROM device_issues "
                       "WHERE device_id = ? AND employee_id IS NOT NULL ORDER BY id", [device_id])
    return [(r["kind"], r["employee_id"], r["seq_from"], r["seq_to"], r["resolved_utc"] is None) for r in rows]


def test_an_open_person_issue_is_widened_both_ways_and_a_resolved_one_is_raised_again(db) -> None:
    device = new_device(db)
    records = chain(8, employee_id="E404")
    ingest(db, device, [records[0], records[3], records[4]], AHEAD_S)
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 1, 5, True)]
    ingest(db, device, [records[2]], AHEAD_S)  # late, inside the span
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 1, 5, True)]
    ingest(db, device, [records[5]], AHEAD_S)
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 1, 6, True)]
    # Another device's open issue about the same person is its own.
    other = new_device(db)
    ingest(db, other, [records[1]], AHEAD_S)
    assert person_spans(db, other.id) == [("unknown_employee", "E404", 2, 2, True)]
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 1, 6, True)]
    # A kiosk enrolment of E404 explains them; a later punch for someone else unknown gets its own issue.
    people.device_enrolment_record(db, device, enrolment(1, employee_id="E404"))
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 1, 6, False)]
    ingest(db, device, [records[6]], AHEAD_S)
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 1, 6, False)]
    e5 = chain(1, start_seq=8, prev=records[6]["hash"], employee_id="E5")
    ingest(db, device, e5, AHEAD_S)
    assert person_spans(db, device.id)[-1] == ("unknown_employee", "E5", 8, 8, True)


def test_a_late_punch_widens_an_open_person_issue_downwards(db) -> None:
    device = new_device(db)
    records = chain(4, employee_id="E404")
    hire(db, "E1")
    ingest(db, device, [rehashed(records[0], employee_id="E1")], AHEAD_S)
    ingest(db, device, [records[3]], AHEAD_S)
    ingest(db, device, [records[1]], AHEAD_S)
    assert person_spans(db, device.id) == [("unknown_employee", "E404", 2, 4, True)]


def test_flags_come_in_order_the_hubs_then_the_callers(db) -> None:
    device = new_device(db)
    hire(db, "E2", "B002")
    soon = iso_utc(utc_now() + timedelta(hours=1))
    records = chain(1, employee_id="E2", ts_utc=soon) + chain(1, start_seq=2, employee_id="E404")
    records[1] = rehashed(records[1], prev_hash=records[0]["hash"])
    extra = {records[0]["id"]: ["outside_site", "new_phone"], "nobody": ["x"]}
    ingest(db, device, records, AHEAD_S, proof="webauthn", extra_flags=extra)
    assert [p["hub_flags"] for p in punches(db)] == ["clock_ahead,webauthn,not_on_roster,outside_site,new_phone",
                                                     "webauthn,unknown_employee"]


# -- the caller's own writes (a field punch's assertion) --------------------------------------

def test_within_runs_in_the_same_transaction_only_when_there_is_something_new(db) -> None:
    device = new_device(db)
    records = chain(2)
    seen: list[tuple[int, int]] = []

    def note(tx: Any) -> None:
        head = tx.row("SELECT chain_seq, punches FROM devices WHERE id = ?", [device.id])
        seen.append((head["chain_seq"], head["punches"]))
        tx.run("UPDATE devices SET name = ? WHERE id = ?", [f"seen-{len(seen)}", device.id])

    ingest(db, device, [records[0]], AHEAD_S, within=note)
    ingest(db, device, [records[0], {"id": "junk"}], AHEAD_S, within=note)  # nothing new: not called
    ingest(db, device, records, AHEAD_S, within=note)
    assert seen == [(0, 0), (1, 1)]
    with db.transaction(write=False) as tx:
        assert tx.row("SELECT name FROM devices WHERE id = ?", [device.id])["name"] == "seen-2"


def test_within_raising_stores_nothing(db) -> None:
    device = new_device(db)
    records = chain(3)
    ingest(db, device, [records[0]], AHEAD_S)
    before = device_row(db, device.id)

    def refuse(tx: Any) -> None:
        tx.run("UPDATE devices SET name = 'changed' WHERE id = ?", [device.id])
        raise LookupError("the caller's check failed")

    with pytest.raises(LookupError, match="the caller's check failed"):
        ingest(db, device, [records[2], {"id": "junk"}, records[0]], AHEAD_S, within=refuse)
    assert device_row(db, device.id) == before
    assert [p["seq"] for p in punches(db)] == [1] and rejects(db, device.id) == [] and spans(db, device.id) == []
    with db.transaction(write=False) as tx:
        assert tx.row("SELECT name FROM devices WHERE id = ?", [device.id])["name"] == "kiosk-B001"
