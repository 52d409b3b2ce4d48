"""The store's own connection layer (kiosk.store.sql), which replaced sqlite-utils: transactions nest as
savepoints, a script inside a transaction stays inside it, rows come as dicts, nothing else is committed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiosk.store.sql import Database, complete_statements, dedupe_keys


@pytest.fixture
def db(tmp_path: Path) -> Database:
    conn = sqlite3.connect(str(tmp_path / "t.db"), isolation_level=None)
    database = Database(conn)
    database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    yield database
    conn.close()


def test_a_failed_inner_block_is_undone_and_the_outer_one_kept(db: Database) -> None:
    with db.atomic():
        db.execute("INSERT INTO t (name) VALUES ('outer')")
        with pytest.raises(RuntimeError), db.atomic():
            db.execute("INSERT INTO t (name) VALUES ('inner')")
            raise RuntimeError("refused")
        assert db.conn.in_transaction
    assert [r["name"] for r in db.query("SELECT name FROM t")] == ["outer"]


def test_a_failed_outer_block_keeps_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.atomic():
        db.execute("INSERT INTO t (name) VALUES ('a')")
        with db.atomic():
            db.execute("INSERT INTO t (name) VALUES ('b')")
        raise RuntimeError("refused")
    assert db.count("t") == 0 and not db.conn.in_transaction


def test_a_script_inside_a_transaction_is_rolled_back_with_it(db: Database) -> None:
    """The driver's executescript would commit the open transaction first: inside one, each statement runs
    in it (a ';' inside a string does not end a statement)."""
    db.execute("BEGIN")
    db.executescript("CREATE TABLE u (x TEXT); INSERT INTO u VALUES ('a;b'); INSERT INTO t (name) VALUES ('s')")
    assert [r["x"] for r in db.query("SELECT x FROM u")] == ["a;b"]
    db.execute("ROLLBACK")
    assert "u" not in db.table_names() and db.count("t") == 0


def test_rows_are_dicts_with_repeated_names_made_unique(db: Database) -> None:
    db.execute("INSERT INTO t (name) VALUES ('x')")
    rows = list(db.query("SELECT a.id, a.name, b.name, b.name AS name_2 FROM t a JOIN t b ON a.id = b.id"))
    assert rows == [{"id": 1, "name": "x", "name_3": "x", "name_2": "x"}]
    assert dedupe_keys(["a", "b"]) == ["a", "b"]


def test_query_refuses_a_statement_without_rows_and_changes_nothing(db: Database) -> None:
    with pytest.raises(ValueError):
        db.query("INSERT INTO t (name) VALUES ('no')")
    assert db.count("t") == 0
    assert list(db.query("PRAGMA user_version")) == [{"user_version": 0}]


def test_statements_split_where_sqlite_ends_them() -> None:
    script = "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET name = 'x;y'; END; SELECT 1"
    assert list(complete_statements(script)) == [
        "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET name = 'x;y'; END;", "SELECT 1"]


def test_the_encrypted_store_reads_and_counts_through_it(fresh_store) -> None:  # noqa: ANN001 - a Store
    fresh_store.roster.add("E1", "One Person")
    stats = fresh_store.stats()
    assert stats["employees"] == 1 and stats["punches"] == 0
    assert "_migrations" in fresh_store.db.table_names()


@pytest.mark.parametrize("statement", ["COMMIT", "END", "  -- ends it\nCOMMIT TRANSACTION", "ROLLBACK",
                                       "RELEASE kiosk_x", "BEGIN", "VACUUM", "DETACH x"])
def test_query_refuses_transaction_control_without_running_it(fresh_store, statement: str) -> None:  # noqa: ANN001
    """A statement that ends, opens or leaves a transaction returns no rows: refused before it runs, so a
    COMMIT cannot keep the writes of an atomic block that then fails."""
    with pytest.raises(ValueError, match="only be used with SQL that returns rows"), fresh_store.atomic() as db:
        db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'from a failed block')")
        fresh_store.query(statement)
    assert fresh_store.get_meta("probe") is None and not fresh_store.conn.in_transaction
