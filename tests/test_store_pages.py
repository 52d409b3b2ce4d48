"""What a durable punch writes: every page is encrypted in full, so an index no query reads is pure cost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kiosk.config import load_config
from kiosk.store import open_store
from kiosk.store.punches import PunchDraft
from kiosk.tools.bench import wal_pages_per_append

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def _punch_indexes(store) -> set[str]:  # noqa: ANN001 - Store
    return {row["name"] for row in store.query("SELECT name FROM sqlite_master WHERE type = 'index' "
                                               "AND tbl_name = 'punches'")}


def test_a_punch_writes_one_page_per_table_and_index_it_needs(fresh_store) -> None:
    """The punch row, its id (unique), the person's punches, the verified-time floor and, with IN/OUT, the
    directed punches: one leaf page each, plus now and then a B-tree split. A new index on punches shows here
    as one more page for every punch."""
    fresh_store.roster.add("E001", "Li")
    card = PunchDraft("E001", "card", "verified")
    assert 4.0 <= wal_pages_per_append(fresh_store, card) < 5.0
    directed = PunchDraft("E001", "card", "verified", direction="IN")
    assert 5.0 <= wal_pages_per_append(fresh_store, directed) < 6.0


def test_a_store_made_before_the_drop_keeps_every_record_and_verifies(kiosk_home: Path, invoke) -> None:
    """A store as earlier versions left it (with the punches_ts index and punches in it) is migrated on open:
    the index goes, every punch and template stays, and the chain verifies."""
    config = load_config(kiosk_home)
    vector = np.linspace(-1, 1, 512, dtype=np.float32)
    with open_store(config) as store:
        with store.atomic() as db:  # the schema as the earlier migrations left it
            db.execute("CREATE INDEX punches_ts ON punches(ts_utc)")
            db.execute("DELETE FROM _migrations WHERE name = 'punches_ts_index_dropped'")
        store.roster.add("E001", "Li", cards=("0012345678",))
        template_id = store.roster.add_template("E001", "test-model", vector, 0.9, "test")
        made = [store.punches.append(PunchDraft("E001", "card", "verified", when=START + timedelta(minutes=i),
                                                direction=("IN", "OUT", "")[i % 3]))
                for i in range(300)]
        assert "punches_ts" in _punch_indexes(store)
    with open_store(config) as store:
        assert "punches_ts" not in _punch_indexes(store)
        assert store.query("SELECT name FROM _migrations WHERE name = 'punches_ts_index_dropped'") != []
        assert [punch.to_dict() for punch in store.punches.iter()] == [punch.to_dict() for punch in made]
        [template] = [t for t in store.roster.templates() if t.id == template_id]
        assert np.array_equal(template.vector, vector)
    result = invoke("db", "verify", "--config", str(kiosk_home))
    assert result.exit_code == 0, result.output
    assert "OK: 300 punches, chain intact" in result.output
    since = invoke("db", "export", "--since", "2026-11-02T05:00:00Z", "--config", str(kiosk_home))
    assert since.exit_code == 0, since.output
    assert [json.loads(line)["seq"] for line in since.stdout.splitlines()] == list(range(241, 301))
