"""The production hub backend: PostgreSQL through psycopg 3 and a connection pool per process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from kiosk.base.errors import StoreError
from sync.hub.db.base import HubDb, Tx

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 7_146_501  # arbitrary constant shared by every hub process


def _pg(sql: str) -> str:
    # Our SQL never holds a literal '%' or '?', so this is an exact translation.
    return sql.replace("?", "%s")


class PostgresTx(Tx):
    dialect = "postgres"
    for_update = " FOR UPDATE"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(_pg(sql), params)
        return cur.fetchall() if cur.description else []

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(_pg(sql), params).rowcount

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), params)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def skip_locked(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"


class PostgresHubDb(HubDb):
    """Stateless workers: every process has its own pool; all state lives in the database."""

    @classmethod
    def from_config(cls, database) -> PostgresHubDb:  # noqa: ANN001 - DatabaseConfig
        return cls(database.postgres_dsn, database.postgres_schema, database.pool_size,
                   password=database.password(), timeout_s=database.busy_timeout_s)

    dialect = "postgres"

    def __init__(self, dsn: str, schema: str = "public", pool_size: int = 8, password: str | None = None,
                 timeout_s: float = 10.0) -> None:
        self.schema = schema
        extra: dict[str, Any] = {"autocommit": False, "row_factory": dict_row}
        if password:
            extra["password"] = password
        self._probe(dsn, extra, timeout_s)
        self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, kwargs=extra, timeout=timeout_s,
                                   configure=self._configure, check=ConnectionPool.check_connection,
                                   name="kiosk-hub", open=False)
        self.pool.open(wait=True, timeout=timeout_s)

    @staticmethod
    def _probe(dsn: str, extra: dict[str, Any], timeout_s: float) -> None:
        """Connect once by hand, so an unreachable server gives libpq's own words, not a pool timeout."""
        try:
            psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), **extra).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to PostgreSQL ({reason})",
                             fix="Check database.postgres_dsn, that the server is running and reachable, "
                             "and the password (credential kiosk-hub-db-password, $PGPASSWORD or ~/.pgpass).") from None

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        conn.commit()

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        with self.pool.connection() as conn:
            if not write:
                # Several SELECTs (a roster page and its cards and templates) must see one snapshot.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            tx = PostgresTx(conn)
            yield tx
        if tx.erased:
            self.scrub()

    def scrub(self) -> None:
        """VACUUM the templates table after an erase: dead row versions are pruned now rather than whenever
        autovacuum runs (README, "Security", says what this does and does not guarantee)."""
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("VACUUM templates")
            finally:
                conn.autocommit = False

    def _migration_lock(self, tx: Tx) -> None:
        tx.run(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema)).as_string(None))
        tx.rows("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK_KEY])

    def close(self) -> None:
        self.pool.close()
