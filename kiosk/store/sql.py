"""The store's connection as its modules use it: statements, scripts, rows as dicts, nested transactions.

This is all the store ever used of sqlite-utils (its Database's execute, executescript, query, atomic,
table_names and a table's count), which cost ~0.05 CPU-s at every start of `kiosk run` and of every
command that opens the store, on top of numpy, which it imports whenever it is installed. The
connection is in autocommit mode (``isolation_level=None``): a statement outside a transaction commits
by itself, and a transaction is only what ``BEGIN`` (Store.atomic) or ``atomic()`` here opens.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

QUERY_NEEDS_ROWS = "query() can only be used with SQL that returns rows - use execute() for other statements"
# Statements that return no rows and would end, open or leave the caller's transaction (a COMMIT would keep the
# writes of a block that then fails) or cannot run inside query()'s savepoint: refused before they run.
QUERY_REFUSED = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "VACUUM", "ATTACH",
                           "DETACH"})


class Database:
    """One DB-API connection (SQLCipher's or sqlite3's) with the few calls the store makes."""

    def __init__(self, conn: Any) -> None:  # noqa: ANN401 - a DB-API connection
        self.conn = conn

    def execute(self, sql: str, parameters: Any = None) -> Any:  # noqa: ANN401 - a DB-API cursor
        """Run one statement; a write commits by itself unless a transaction is open."""
        return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def executescript(self, sql: str) -> Any:  # noqa: ANN401 - a DB-API cursor
        """Run statements separated by ``;``. Inside a transaction they run one by one, as part of it (the
        driver's executescript would commit the transaction first)."""
        if not self.conn.in_transaction:
            return self.conn.executescript(sql)
        cursor = self.conn.cursor()
        for statement in complete_statements(sql):
            cursor.execute(statement)
        return cursor

    def query(self, sql: str, params: Any = None) -> Iterator[dict[str, Any]]:  # noqa: ANN401 - DB-API parameters
        """Rows as dicts (a column name that comes twice gets ``_2``, ``_3``... on its later copies);
        ValueError, with nothing changed, for a statement that returns no rows."""
        keyword = _first_keyword(sql)
        if keyword in QUERY_REFUSED:
            raise ValueError(QUERY_NEEDS_ROWS)
        if keyword == "PRAGMA":
            cursor = self.execute(sql, params)
            if cursor.description is None:
                raise ValueError(QUERY_NEEDS_ROWS)
            return _rows(cursor, cursor)
        # In a savepoint, so that a statement that turns out to return no rows is undone before the error.
        self.conn.execute('SAVEPOINT "kiosk_query"')
        released = False
        try:
            cursor = self.execute(sql, params)
            if cursor.description is None:
                raise ValueError(QUERY_NEEDS_ROWS)
            try:
                self.conn.execute('RELEASE "kiosk_query"')
                released = True
            except self.conn.OperationalError:
                # A write that returns rows (INSERT ... RETURNING) still running: finish it, then release.
                fetched = cursor.fetchall()
                self.conn.execute('RELEASE "kiosk_query"')
                released = True
                return _rows(cursor, fetched)
            return _rows(cursor, cursor)
        finally:
            if not released and self.conn.in_transaction:
                self.conn.execute('ROLLBACK TO "kiosk_query"')
                self.conn.execute('RELEASE "kiosk_query"')

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Database]:
        """A transaction, or inside one a savepoint: all of the block's writes are kept, or none."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            try:
                yield self
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            return
        savepoint = f"kiosk_{secrets.token_hex(8)}"
        self.conn.execute(f"SAVEPOINT {savepoint}")
        try:
            yield self
        except BaseException:
            # A failure may have ended the whole transaction (savepoints with it): nothing left to undo then.
            if self.conn.in_transaction:
                self.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            raise
        self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")

    def table_names(self) -> list[str]:
        return [row[0] for row in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]

    def count(self, table: str) -> int:
        """Rows in ``table`` (one of the store's own names, never user input)."""
        return int(self.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0])


def _rows(cursor: Any, rows: Iterable) -> Iterator[dict[str, Any]]:  # noqa: ANN401 - a DB-API cursor
    keys = dedupe_keys(d[0] for d in cursor.description)
    return (dict(zip(keys, row, strict=True)) for row in rows)


def dedupe_keys(keys: Iterable[str]) -> list[str]:
    """Column names made unique: a later copy of a name gets ``_2``, ``_3``..., skipping a suffix that is
    another column's name."""
    keys = list(keys)
    taken = set(keys)
    if len(taken) == len(keys):
        return keys
    seen: set[str] = set()
    out = []
    for key in keys:
        if key in seen:
            new, suffix = key, 2
            while new in seen or new in taken:
                new, suffix = f"{key}_{suffix}", suffix + 1
            key = new
        seen.add(key)
        out.append(key)
    return out


def complete_statements(sql: str) -> Iterator[str]:
    """The statements of a script, each whole as SQLite parses it (a ``;`` inside a string or a trigger's
    body does not end one)."""
    parts = sql.split(";")
    statement = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        statement += part if last else part + ";"
        text = statement.strip()
        if text.strip(";").strip() and (last or sqlite3.complete_statement(text)):
            yield text
            statement = ""
        elif not text.strip(";").strip():
            statement = ""


def _first_keyword(sql: str) -> str:
    """The statement's first keyword, upper case, after blanks, ``;`` and comments ('' when none)."""
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] in (";", "\ufeff"):
            i += 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            if i == -1:
                return ""
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            if i == -1:
                return ""
            i += 2
        else:
            break
    j = i
    while j < n and (sql[j].isalpha() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper()
