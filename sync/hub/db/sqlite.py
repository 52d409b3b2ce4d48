"""The embedded hub backend: one SQLite file, WAL, a connection per thread, fsync on commit."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kiosk.base.errors import StoreError
from sync.hub.db.base import HubDb, Tx

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
# SQLite creates the -wal and -shm files with the main file's mode, so a private main file keeps them private.
COMPANIONS = ("", "-wal", "-shm", "-journal")


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class SqliteTx(Tx):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, params)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if not values:
            return "0 = 1", []
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)


class SqliteHubDb(HubDb):
    """SQLite: writers queue on the file lock (BEGIN IMMEDIATE), readers never block."""

    @classmethod
    def from_config(cls, database) -> SqliteHubDb:  # noqa: ANN001 - DatabaseConfig
        return cls(database.sqlite_path, database.busy_timeout_s)

    dialect = "sqlite"

    def __init__(self, path: Path, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreError(f"the folder for the hub database, {self.path.parent}, does not exist",
                             fix="Create it (the systemd unit's StateDirectory does) or fix database.sqlite_path.")
        self.busy_timeout_s = busy_timeout_s
        self._make_private()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _make_private(self) -> None:
        """The database and its companions readable by the hub's user only (also tightens older files)."""
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, PRIVATE_MODE))
            for suffix in COMPANIONS:
                path = self.path.with_name(self.path.name + suffix)
                if path.exists() and path.stat().st_mode & 0o077:
                    path.chmod(PRIVATE_MODE)
        except OSError as exc:
            raise StoreError(f"cannot create or protect the hub database {self.path}: {exc.strerror}",
                             fix="Run the hub as the user that owns the database folder.") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout_s)
            conn.row_factory = _dict_row
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            # A punch the hub acknowledged may later be purged on the kiosk: commits must be durable.
            conn.execute("PRAGMA synchronous=FULL")
            # Deleted rows (erased templates) are overwritten with zeros, not left in free pages.
            conn.execute("PRAGMA secure_delete=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        tx = SqliteTx(conn)
        try:
            yield tx
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if tx.erased:
            self.scrub()

    def scrub(self) -> None:
        """Fold the WAL into the main file and truncate it: the old page images holding erased templates
        are gone from hub.db-wal, and secure_delete has already zeroed them in hub.db."""
        busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone().values()
        if busy:
            log.warning("hub database: a reader kept the WAL checkpoint after an erase from finishing; "
                        "the next erase or SQLite's automatic checkpoint completes it")

    def _migration_lock(self, tx: Tx) -> None:
        """BEGIN IMMEDIATE already holds the only write lock."""

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
