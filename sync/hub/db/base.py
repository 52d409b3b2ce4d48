"""The hub's storage interface: transactions over SQLite or PostgreSQL, migrations, counters.

Everything above this module (devices, ingest, people, export) is written once against `Tx`,
with `?` placeholders; each backend supplies connections and the few dialect differences.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub.db.schema import DATA_STEPS, MIGRATIONS
from sync.hub.db.sealed import SecretBox

log = logging.getLogger(__name__)


class Tx(abc.ABC):
    """One open transaction. SQL uses ``?`` placeholders in every dialect."""

    dialect: str = ""
    box: SecretBox | None = None  # the hub key (set by open_hub_db)
    for_update: str = ""
    # Set by people.erase_templates: after the commit the backend scrubs what the delete left (HubDb.scrub).
    erased: bool = False

    @abc.abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return every row as a dict."""

    @abc.abstractmethod
    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""

    @abc.abstractmethod
    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""

    @abc.abstractmethod
    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A ``column IN (...)`` condition and its parameters."""

    def skip_locked(self, alias: str) -> str:
        """Row locks for a claim query: ``FOR UPDATE OF alias SKIP LOCKED`` where the database has them
        (SQLite's single writer lock already keeps two claims apart)."""
        return ""

    def row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def next_values(self, counter: str, count: int) -> int:
        """Reserve ``count`` consecutive values of a counter; returns the first.

        The counter row stays locked until commit, so values become visible in the order
        they were handed out: a reader paging with ``> cursor`` never skips a row.
        """
        top = self.row("UPDATE counters SET value = value + ? WHERE name = ? RETURNING value", [count, counter])
        return int(top["value"]) - count + 1


class HubDb(abc.ABC):
    """A hub database: hands out transactions and applies migrations."""

    dialect: str = ""

    @abc.abstractmethod
    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager[Tx]:
        """A transaction committed on normal exit, rolled back on error (reads are consistent)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection."""

    @abc.abstractmethod
    def scrub(self) -> None:
        """After a transaction that erased templates: make the erased bytes unreadable from the database's
        files as far as the backend allows (SQLite: checkpoint the WAL; PostgreSQL: VACUUM the table)."""

    @abc.abstractmethod
    def _migration_lock(self, tx: Tx) -> None:
        """Keep two processes from migrating at once."""

    def migrate(self) -> list[str]:
        """Apply pending named migrations in one transaction; returns what ran."""
        ran = []
        with self.transaction() as tx:
            self._migration_lock(tx)
            tx.run("CREATE TABLE IF NOT EXISTS hub_migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
            done = {r["name"] for r in tx.rows("SELECT name FROM hub_migrations")}
            for name, statements in MIGRATIONS:
                if name in done:
                    continue
                for stmt in statements(self.dialect):
                    tx.run(stmt)
                if name in DATA_STEPS:
                    DATA_STEPS[name](tx, self.box)
                tx.run("INSERT INTO hub_migrations (name, applied_utc) VALUES (?, ?)", [name, iso_utc(utc_now())])
                ran.append(name)
        if ran:
            log.info("hub database: applied migrations %s", ", ".join(ran))
        return ran

    def applied(self) -> list[str]:
        """Names of the migrations already applied."""
        with self.transaction() as tx:
            self._migration_lock(tx)
            tx.run("CREATE TABLE IF NOT EXISTS hub_migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
            return [r["name"] for r in tx.rows("SELECT name FROM hub_migrations ORDER BY name")]

    def pending(self) -> list[str]:
        done = set(self.applied())
        return [name for name, _ in MIGRATIONS if name not in done]

    def __enter__(self) -> HubDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
