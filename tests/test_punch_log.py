"""The punch log at its interface (kiosk.store.punches): what it refuses and says, what each query returns,
what a chain walk reports, what an export writes. Real encrypted store made by `kiosk init`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.base.errors import InvalidInput, NotFound, StoreError
from kiosk.base.record import punch_hash
from kiosk.config import load_config
from kiosk.store import Store, open_store
from kiosk.store.punches import NOTE_MAX_CHARS, PunchDraft, export_punches

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(fresh_store: Store) -> Store:
    fresh_store.roster.add("E001", "Li Na")
    fresh_store.roster.add("E002", "Wang Fang")
    return fresh_store


def _tamper(store: Store):
    """The attacker's view: the same key, the append-only triggers dropped."""
    store.conn.execute("DROP TRIGGER punches_no_update")
    store.conn.execute("DROP TRIGGER punches_no_delete")
    return store.conn


@pytest.mark.parametrize(("draft", "what", "fix"), [
    (PunchDraft("E001", "palm"), "unknown punch method 'palm'", "Use one of: face, card, card+face, manual."),
    (PunchDraft("E001", "card", clock_state="guessed"), "unknown clock state 'guessed'", ""),
    (PunchDraft("E001", "card", direction="in"), "unknown direction 'in'", "Use IN, OUT, or none."),
    (PunchDraft("E001", "card", kind="edit"), "unknown punch kind 'edit'", ""),
    (PunchDraft("E001", "card", note="x" * (NOTE_MAX_CHARS + 1)),
     f"note is {NOTE_MAX_CHARS + 1} characters; at most {NOTE_MAX_CHARS} are kept", "Shorten the note."),
])
def test_a_malformed_draft_is_refused_with_what_and_what_to_do(store: Store, draft, what: str, fix: str) -> None:
    with pytest.raises(InvalidInput) as err:
        store.punches.append(draft)
    assert (err.value.what, err.value.fix) == (what, fix)
    assert store.punches.count() == 0


def test_a_note_at_the_limit_is_stored_whole(store: Store) -> None:
    punch = store.punches.append(PunchDraft("E001", "manual", note="n" * NOTE_MAX_CHARS))
    assert store.punches.head().note == "n" * NOTE_MAX_CHARS == punch.note


def test_an_unknown_employee_is_not_found_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(NotFound) as err:
        store.punches.append(PunchDraft("E404", "card"))
    assert err.value.what == "no employee 'E404' on this kiosk"
    assert err.value.fix == "Check the id with `kiosk employee list`."
    assert store.punches.count() == 0 and store.punches.head() is None and store.punches.head_seq() == 0


def test_append_keeps_what_the_caller_decided_and_chains_it(store: Store) -> None:
    first = store.punches.append(PunchDraft("E001", "card", "verified", when=T0, mono_ns=123, boot_id="boot-a"))
    second = store.punches.append(PunchDraft("E002", "face", score=0.71, when=T0 + timedelta(seconds=1),
                                             direction="OUT", kind="correction", author="admin"))
    assert (first.seq, first.mono_ns, first.boot_id, first.ts_utc) == (1, 123, "boot-a", "2026-03-02T08:00:00.000Z")
    assert first.prev_hash == "0" * 64 and second.prev_hash == first.hash and second.seq == 2
    assert (second.direction, second.kind, second.author, second.score) == ("OUT", "correction", "admin", 0.71)
    assert second.mono_ns != 123 and second.boot_id != "boot-a", "unset: this boot's monotonic clock"
    # The id is a UUIDv7 whose first 48 bits are the punch time in Unix milliseconds.
    assert int(first.id.replace("-", "")[:12], 16) == int(T0.timestamp() * 1000)
    assert [p.to_dict() for p in store.punches.iter()] == [first.to_dict(), second.to_dict()]
    assert first.hash == punch_hash(first.to_dict())


def test_a_busy_store_says_the_punch_was_not_recorded(kiosk_home: Path, store: Store) -> None:
    other = open_store(load_config(kiosk_home, ["store.busy_timeout_s=0.1"]))
    try:
        store.conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError) as err:
            other.punches.append(PunchDraft("E001", "card"))
        assert err.value.what.startswith("recording the punch failed: ")
        store.conn.execute("ROLLBACK")
    finally:
        other.close()


def test_queries_answer_per_person_and_by_kind(store: Store) -> None:
    assert store.punches.last_for("E001") is None and store.punches.last_correction_for("E001") is None
    a = store.punches.append(PunchDraft("E001", "card", when=T0))
    fix = store.punches.append(PunchDraft("E001", "manual", when=T0 - timedelta(hours=1), kind="correction"))
    b = store.punches.append(PunchDraft("E001", "card", when=T0 + timedelta(minutes=5)))
    store.punches.append(PunchDraft("E002", "card", when=T0 + timedelta(minutes=9)))
    assert store.punches.last_for("E001").id == b.id
    assert store.punches.last_correction_for("E001").id == fix.id and a.id != fix.id
    assert store.punches.last_correction_for("E002") is None
    assert store.punches.head().employee_id == "E002" and store.punches.head_seq() == 4 == store.punches.count()


def test_latest_with_direction_is_by_punch_time_within_inclusive_bounds(store: Store) -> None:
    store.punches.append(PunchDraft("E001", "card", when=T0, direction="IN"))
    late_entry = store.punches.append(PunchDraft("E001", "manual", when=T0 + timedelta(hours=8), direction="OUT",
                                                 kind="correction"))
    store.punches.append(PunchDraft("E001", "card", when=T0 + timedelta(hours=2), direction="IN"))
    store.punches.append(PunchDraft("E001", "card", when=T0 + timedelta(hours=9)))  # no direction
    store.punches.append(PunchDraft("E002", "card", when=T0 + timedelta(hours=8, minutes=30), direction="IN"))

    def latest(since: datetime, until: datetime):
        found = store.punches.latest_with_direction("E001", since.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                                    until.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        return found and (found.ts_utc, found.direction)

    assert latest(T0, T0 + timedelta(hours=10)) == (late_entry.ts_utc, "OUT"), "by punch time, not by seq"
    assert latest(T0, T0 + timedelta(hours=8)) == (late_entry.ts_utc, "OUT"), "the upper bound is inclusive"
    assert latest(T0, T0 + timedelta(hours=7)) == ("2026-03-02T10:00:00.000Z", "IN")
    assert latest(T0, T0) == ("2026-03-02T08:00:00.000Z", "IN"), "the lower bound is inclusive"
    assert latest(T0 + timedelta(hours=8, seconds=1), T0 + timedelta(hours=12)) is None, "undirected punch only"


def test_newest_verified_time_ignores_unverified_punches(store: Store) -> None:
    assert store.punches.newest_verified_utc() is None
    store.punches.append(PunchDraft("E001", "card", "unverified", when=T0 + timedelta(days=300)))
    assert store.punches.newest_verified_utc() is None
    store.punches.append(PunchDraft("E001", "card", "verified", when=T0 + timedelta(hours=1)))
    store.punches.append(PunchDraft("E001", "card", "verified", when=T0))
    assert store.punches.newest_verified_utc() == T0 + timedelta(hours=1)


def test_rows_read_in_batches_and_from_a_time_or_seq(store: Store) -> None:
    made = [store.punches.append(PunchDraft("E001", "card", when=T0 + timedelta(minutes=i))) for i in range(7)]
    assert [r["seq"] for r in store.punches.rows()] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["seq"] for r in store.punches.rows(batch=2)] == [1, 2, 3, 4, 5, 6, 7]
    assert [p.seq for p in store.punches.iter(batch=3)] == [1, 2, 3, 4, 5, 6, 7]
    assert [p.seq for p in store.punches.iter(after_seq=4, batch=2)] == [5, 6, 7]
    assert [p.seq for p in store.punches.iter(made[3].ts_utc, batch=2)] == [4, 5, 6, 7]
    assert [p.id for p in store.punches.iter(made[5].ts_utc)] == [made[5].id, made[6].id]


@pytest.fixture
def five(store: Store) -> list:
    return [store.punches.append(PunchDraft("E001", "card", when=T0 + timedelta(minutes=i))) for i in range(5)]


def test_an_intact_chain_reports_every_punch(store: Store, five: list) -> None:
    report = store.punches.verify()
    assert (report.checked, report.ok, report.bad_seq, report.bad_id, report.problem, report.anchored_at) == \
        (5, True, None, None, "", None)


def test_a_missing_punch_is_reported_with_where_and_how_many(store: Store, five: list) -> None:
    _tamper(store).execute("DELETE FROM punches WHERE seq IN (2, 3)")
    report = store.punches.verify()
    assert (report.checked, report.ok, report.bad_seq, report.bad_id) == (1, False, 4, five[3].id)
    assert report.problem == "seq jumps from 1 to 4: 2 punch(es) missing"


def test_a_relinked_punch_is_a_broken_chain(store: Store, five: list) -> None:
    """An inserted record re-hashed on its own is caught by the link from the next one."""
    conn = _tamper(store)
    row = store.query("SELECT * FROM punches WHERE seq = 3")[0]
    row["prev_hash"] = "f" * 64
    conn.execute("UPDATE punches SET prev_hash = ?, hash = ? WHERE seq = 3", [row["prev_hash"], punch_hash(row)])
    report = store.punches.verify()
    assert (report.checked, report.ok, report.bad_seq, report.bad_id) == (2, False, 3, five[2].id)
    assert report.problem == "prev_hash does not match the previous punch: the chain was broken"


def test_an_edited_punch_is_reported_as_altered(store: Store, five: list) -> None:
    _tamper(store).execute("UPDATE punches SET employee_id = 'E002' WHERE seq = 4")
    report = store.punches.verify()
    assert (report.checked, report.ok, report.bad_seq, report.bad_id) == (3, False, 4, five[3].id)
    assert report.problem == "hash does not match the record: it was altered after it was stored"


def test_json_export_writes_one_unescaped_line_per_punch(store: Store) -> None:
    store.roster.add("E003", "Zhang Wei")
    made = [store.punches.append(PunchDraft("E003", "manual", note="早班 ok")) for _ in range(3)]
    out = io.StringIO()
    assert export_punches(store.punches.iter(), "jsonl", out) == 3
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [p.to_dict() for p in made]
    assert '"note": "早班 ok"' in lines[0], "non-ASCII text is written as is, not \\u-escaped"
    assert export_punches(iter(()), "jsonl", io.StringIO()) == 0


def test_csv_export_has_a_header_and_a_row_per_punch(store: Store) -> None:
    made = [store.punches.append(PunchDraft("E001", "card", note=f"n{i}")) for i in range(3)]
    out = io.StringIO()
    assert export_punches(store.punches.iter(), "csv", out) == 3
    lines = out.getvalue().splitlines()
    assert lines[0].split(",") == list(made[0].to_dict())
    assert [line.split(",")[0] for line in lines[1:]] == [p.id for p in made]
    empty = io.StringIO()
    assert export_punches(iter(()), "csv", empty) == 0 and empty.getvalue() == ""
