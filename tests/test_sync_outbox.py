"""The kiosk's outbox: acks advance the cursor, rejections are kept, retention never loses an unsynced punch."""

from __future__ import annotations

import pytest

from kiosk.base.errors import StoreError
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.store import open_store
from kiosk.store.syncstate import Registration, SyncState
from sync.protocol import PunchBatchResponse, PunchResult


def answer(batch: list[dict], status: dict[int, str] | None = None, skip: set[int] = frozenset()) -> PunchBatchResponse:
    status = status or {}
    results = [PunchResult(id=r["id"], seq=r["seq"], status=status.get(r["seq"], "accepted"),
                           reason="bad" if status.get(r["seq"]) == "rejected" else "")
               for r in batch if r["seq"] not in skip]
    return PunchBatchResponse(results=results, accepted=0, duplicates=0, rejected=0, chain_seq=0)


def age_acks(store, days: int) -> None:
    """Make every acknowledgement ``days`` old (as if the kiosk had run that long)."""
    from datetime import timedelta
    with store.atomic() as db:
        db.execute("UPDATE sync_acks SET acked_utc = ?", [iso_utc(utc_now() - timedelta(days=days))])


@pytest.fixture
def kiosk(make_kiosk):
    k = make_kiosk()
    k.punch("E1", 10)
    return k


def test_cursor_passes_only_answered_records_and_rejections_are_kept(kiosk) -> None:
    state = SyncState(kiosk.store)
    batch = state.pending(4)
    assert [r["seq"] for r in batch] == [1, 2, 3, 4]
    outcome = state.record_results(batch, answer(batch, {2: "rejected"}, skip={4}))
    assert outcome.push_seq == 3, "no verdict for seq 4: it is sent again"
    assert state.get_int("acked_seq") == 1, "the acknowledged prefix stops before the rejection"
    assert [r["seq"] for r in state.pending(100)][0] == 4
    assert state.rejected_count() == 1 and state.backlog() == 7 + 1
    assert state.rejections()[0]["reason"] == "bad"
    # A later retry that the hub accepts clears the rejection and frees the prefix.
    again = state.rejected_records(10)
    state.record_results(again, answer(again))
    assert state.rejected_count() == 0 and state.get_int("acked_seq") == 3


def test_the_store_refuses_to_delete_punches_the_hub_has_not_acknowledged(kiosk) -> None:
    with pytest.raises(StoreError, match="append-only"):
        with kiosk.store.atomic() as db:
            db.execute("DELETE FROM punches WHERE seq = 1")
    with pytest.raises(StoreError, match="append-only"):
        with kiosk.store.atomic() as db:
            db.execute("UPDATE punches SET employee_id = 'E9' WHERE seq = 1")
    assert kiosk.store.punches.count() == 10


def test_retention_purges_only_old_acknowledged_punches_and_verify_still_passes(kiosk, invoke) -> None:
    state = SyncState(kiosk.store)
    batch = state.pending(8)
    state.record_results(batch, answer(batch, {6: "rejected"}))
    assert state.purge(30) == 0, "acknowledged today: kept for 30 days"
    age_acks(kiosk.store, 31)
    assert state.purge(0) == 0, "retention_days = 0 keeps everything"
    assert state.purge(30) == 5, "seq 1-5: acknowledged; 6 rejected, 9-10 never sent"
    assert [p.seq for p in kiosk.store.punches.iter()] == [6, 7, 8, 9, 10]
    report = kiosk.store.punches.verify()
    assert report.ok and report.anchored_at == 5 and report.checked == 5
    assert state.purge(30) == 0, "nothing more is eligible"
    kiosk.store.close()
    result = invoke("db", "verify", "--config", str(kiosk.path))
    assert result.exit_code == 0 and "OK: 5 punches" in result.output
    kiosk.store = open_store(kiosk.config)


def test_retention_never_purges_the_newest_punch_and_appends_continue_the_chain(kiosk) -> None:
    state = SyncState(kiosk.store)
    batch = state.pending(100)
    state.record_results(batch, answer(batch))
    age_acks(kiosk.store, 400)
    assert state.purge(1) == 9
    head = kiosk.store.punches.head()
    assert head.seq == 10
    kiosk.punch("E1", 2)
    assert [p.seq for p in kiosk.store.punches.iter()] == [10, 11, 12]
    assert kiosk.store.punches.verify().ok


def test_verify_after_purge_still_detects_tampering(kiosk) -> None:
    state = SyncState(kiosk.store)
    batch = state.pending(100)
    state.record_results(batch, answer(batch))
    age_acks(kiosk.store, 40)
    state.purge(30)
    with kiosk.store.atomic() as db:
        db.execute("DROP TRIGGER punches_no_update")
        db.execute("UPDATE punches SET employee_id = 'E9' WHERE seq = 10")
    report = kiosk.store.punches.verify()
    assert not report.ok and report.bad_seq == 10 and "altered" in report.problem


def test_unpurged_store_verifies_from_genesis(kiosk) -> None:
    report = kiosk.store.punches.verify()
    assert report.ok and report.checked == 10 and report.anchored_at is None


def test_registration_to_the_same_hub_continues_to_a_new_hub_starts_over(kiosk) -> None:
    state = SyncState(kiosk.store)
    assert state.chain_start_for("https://hub-a") == (0, "0" * 64)
    state.save_registration(Registration("https://hub-a", "dev_1", "tok", "B001", iso_utc(utc_now())), 0)
    batch = state.pending(4)
    state.record_results(batch, answer(batch))
    seq, digest = state.chain_start_for("https://hub-a")
    assert seq == 4 and digest == batch[-1]["hash"]
    assert state.chain_start_for("https://hub-b") == (0, "0" * 64)
    age_acks(kiosk.store, 10)
    state.purge(1)
    anchor = kiosk.store.punches.chain_anchor()
    assert anchor[0] == 4 and state.chain_start_for("https://hub-b") == anchor
    assert "tok" not in repr(state.registration())
