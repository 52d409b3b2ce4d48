"""Protocol v1 units: record validation, the hub's chain walk, backoff, clock offset, config rules."""

from __future__ import annotations

import math

import httpx
import pytest
from pydantic import ValidationError

from kiosk.base.errors import ConfigError
from kiosk.base.record import GENESIS_HASH, punch_hash
from kiosk.base.timeutil import iso_utc, utc_now, uuid7
from kiosk.config import validate_config
from kiosk.time.hubclock import measure
from sync.agent import Backoff
from sync.hub.config import validate_hub_config
from sync.hub.ingest import check_records, walk_forward
from sync.protocol import Heartbeat, PunchIn, RosterTemplate, TemplateIn, encode_vector


def chain(count: int, start_seq: int = 1, prev: str = GENESIS_HASH, **fields) -> list[dict]:
    records = []
    for seq in range(start_seq, start_seq + count):
        rec = {"id": str(uuid7()), "seq": seq, "employee_id": "E1", "method": "face", "ts_utc": iso_utc(utc_now()),
               "mono_ns": 123, "boot_id": "boot-1", "clock_state": "verified", "score": 0.61, "lat": 31.2,
               "lon": 121.5, "accuracy_m": 8.0, "flags": "", "note": "", "prev_hash": prev, **fields}
        rec["hash"] = punch_hash(rec)
        prev = rec["hash"]
        records.append(rec)
    return records


def test_a_kiosk_punch_validates_and_its_hash_is_recomputed_exactly() -> None:
    rec = chain(1)[0]
    punch = PunchIn.model_validate(rec)
    assert punch.hash_matches()
    altered = {**rec, "employee_id": "E2"}
    assert not PunchIn.model_validate(altered).hash_matches()


@pytest.mark.parametrize(("field", "value", "expect"), [
    ("id", "not-a-uuid", "id"),
    ("seq", 0, "seq"),
    ("seq", "5", "seq"),  # strict: a string is not a number
    ("employee_id", "bad id!", "employee_id"),
    ("method", "telepathy", "method"),
    ("ts_utc", "2026-02-30T08:00:00.000Z", "ts_utc"),
    ("ts_utc", "yesterday", "ts_utc"),
    ("ts_utc", "1970-01-01T00:00:00.000Z", "ts_utc"),
    ("score", 1.5, "score"),
    ("lat", 91.0, "lat"),
    ("accuracy_m", -1.0, "accuracy_m"),
    ("note", "x" * 501, "note"),
    ("prev_hash", "00", "prev_hash"),
    ("clock_state", "maybe", "clock_state"),
])
def test_each_bad_field_is_named_in_the_rejection(field: str, value, expect: str) -> None:
    rec = {**chain(1)[0], field: value}
    checked = check_records([rec, *chain(1)])
    result = checked.results[0]
    assert result is not None and result.status == "rejected"
    assert expect in result.reason
    assert len(checked.valid) == 1, "the good record next to it is still valid"


def test_non_finite_numbers_and_non_objects_are_rejected_without_blocking_others() -> None:
    rec = chain(1)[0]
    checked = check_records([{**rec, "score": math.nan}, "garbage", 42, chain(1)[0]])
    assert [r.status for r in checked.results[:3]] == ["rejected"] * 3
    assert len(checked.valid) == 1 and checked.results[3] is None


def test_chain_walk_finds_gaps_breaks_and_sets_aside_forks() -> None:
    records = [PunchIn.model_validate(r) for r in chain(6)]
    walk = walk_forward(0, GENESIS_HASH, records[:2] + records[3:])
    assert walk.seq == 6
    assert [(g.first, g.last) for g in walk.new_gaps] == [(3, 3)]
    assert walk.status[records[3].id] == "after_gap"
    assert walk.status[records[4].id] == "ok"

    tampered = PunchIn.model_validate({**chain(1, start_seq=3, prev="f" * 64)[0]})
    walk = walk_forward(2, records[1].hash, [tampered])
    assert walk.status[tampered.id] == "break" and walk.issues[0][0] == "chain_break"

    walk = walk_forward(6, records[5].hash, [records[2]])
    assert walk.behind == [records[2]] and walk.seq == 6


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    now = [0.0]
    backoff = Backoff(1.0, 30.0, rand=lambda: 1.0, clock=lambda: now[0])
    delays = [backoff.failed() for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert not backoff.ready()
    now[0] = 31.0
    assert backoff.ready()
    low = Backoff(1.0, 30.0, rand=lambda: 0.0, clock=lambda: 0.0)
    assert low.failed() == 0.5, "equal jitter: never less than half the base"
    assert low.failed(retry_after_s=20) == 20
    assert low.failed(retry_after_s=10_000) == 30, "Retry-After is capped too"
    low.succeeded()
    assert low.failures == 0 and low.ready()


def test_clock_offset_prefers_the_millisecond_header_and_falls_back_to_date() -> None:
    headers = httpx.Headers({"X-Hub-Time": "2026-11-26T10:00:05.250Z", "Date": "Thu, 26 Nov 2026 10:00:05 GMT"})
    sent = utc_now().replace(year=2026, month=11, day=26, hour=10, minute=0, second=0, microsecond=0).timestamp()
    clock = measure(headers, sent, sent + 0.5, 0, 500_000_000)
    assert clock.source == "x-hub-time"
    assert clock.offset_s == pytest.approx(5.0, abs=1e-3)
    assert clock.uncertainty_s == pytest.approx(0.251, abs=1e-3)
    date_only = measure(httpx.Headers({"Date": "Thu, 26 Nov 2026 10:00:05 GMT"}), sent, sent + 0.5, 0, 500_000_000)
    assert date_only.source == "date" and date_only.offset_s == pytest.approx(5.25, abs=1e-3)
    assert measure(httpx.Headers({}), sent, sent, 0, 0) is None
    assert measure(httpx.Headers({"X-Hub-Time": "garbage"}), sent, sent, 0, 0) is None


def test_templates_are_checked_for_finite_non_zero_values_and_decoded_with_their_length() -> None:
    with pytest.raises(ValidationError, match="finite"):
        TemplateIn(model_id="ab" * 32, vector=[math.inf] + [0.1] * 63)
    with pytest.raises(ValidationError, match="zeros"):
        TemplateIn(model_id="ab" * 32, vector=[0.0] * 64)
    good = RosterTemplate(model_id="ab" * 32, dim=64, vector_b64=encode_vector([0.125] * 64))
    assert good.vector().shape == (64,)
    with pytest.raises(ValueError, match="has 64 values; this model.s templates have 128"):
        RosterTemplate(model_id="ab" * 32, dim=128, vector_b64=encode_vector([0.125] * 64)).vector()


def test_heartbeat_refuses_nonsense() -> None:
    with pytest.raises(ValidationError):
        Heartbeat(software_version="1", backlog=-1, clock_state="verified")
    with pytest.raises(ValidationError):
        Heartbeat(software_version="1", backlog=0, clock_state="verified", clock_offset_s=math.inf)


def test_sync_config_rules(tmp_path) -> None:
    cfg = validate_config({"sync": {"hub_url": "https://hub.bank:8750/", "ca_bundle": "ca.pem"}}, "t", tmp_path)
    assert cfg.sync.hub_url == "https://hub.bank:8750"
    assert cfg.sync.ca_bundle == tmp_path / "ca.pem"
    with pytest.raises(ConfigError) as err:
        validate_config({"sync": {"hub_url": "ftp://x", "backoff_initial_s": 10, "backoff_max_s": 5,
                                  "batch_sise": 3}}, "t", tmp_path)
    text = "\n".join(err.value.problems)
    assert "hub_url" in text and "backoff_max_s" in text and "batch_sise" in text


def test_hub_config_rules(tmp_path) -> None:
    cfg = validate_hub_config({}, "t", tmp_path)
    assert cfg.database.backend == "sqlite" and cfg.database.sqlite_path == tmp_path / "hub.db"
    with pytest.raises(ConfigError, match="problem"):
        validate_hub_config({"database": {"backend": "postgres"}}, "t", tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_hub_config({"database": {"backend": "postgres", "postgres_dsn": "host=x password=secret"}},
                            "t", tmp_path)
    assert any("password" in p for p in err.value.problems)
