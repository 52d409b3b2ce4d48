"""The store's SQLCipher connection, and reads that need nothing more than it.

Kept apart from kiosk.store.database, which loads sqlite-utils (and through it numpy), so that a
command that only needs one figure from the store (`kiosk config check`: the roster's size for the
decision threshold) starts in a fraction of the CPU time. Anything but an up-to-date kiosk store goes
through the full Store.open, which says what is wrong or migrates, as for every other command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from kiosk.store import migrations
from kiosk.store.keys import DbKey, resolve_key

STORE_KIND = "branch-kiosk-store"
# Active employees with at least one template of a model id: the roster size the threshold is set for.
FACE_ROSTER_SQL = ("SELECT count(DISTINCT t.employee_id) AS n FROM templates t "
                   "JOIN employees e ON e.id = t.employee_id WHERE e.active = 1 AND t.model_id = ?")

Connect = Callable[[], Any]


def sqlcipher_factory(path: Path, key: DbKey, busy_timeout_s: float = 5.0) -> Connect:
    """A connection factory for an encrypted file keyed with a raw 256-bit key."""

    def connect() -> Any:
        conn = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False,
                                 timeout=busy_timeout_s)
        # SQLCipher would print its own "ERROR CORE ... hmac check failed" lines for a wrong key or a
        # damaged file; the StoreError raised for them already says what happened and what to do.
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(f"PRAGMA key = {key.pragma_literal}")
        return conn

    return connect


def writable_in_place(path: Path) -> bool:
    """Whether the store at ``path`` can be opened where it is (it writes its WAL even to read)."""
    folder = Path(path).parent
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return True  # Store.open says what is wrong with the folder
    return not read_only and os.access(folder, os.W_OK)


def _up_to_date(conn: Any) -> bool:  # noqa: ANN401 - a DB-API connection
    """Whether ``conn`` is on a kiosk store with no migration due (Store.open would change nothing)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"meta", "_migrations"} <= tables:
        return False
    kind = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    return kind is not None and kind[0] == STORE_KIND and not migrations.outstanding(done)


def face_roster_size(config, model_id: str) -> int:  # noqa: ANN001 - KioskConfig
    """How many active employees have a template of ``model_id``, read with one SQLCipher connection when
    the store is an up-to-date kiosk store on a writable disk; otherwise through open_store, which raises
    the StoreError that says what is wrong (or migrates the store first)."""
    path = Path(config.store.path)
    key = resolve_key(config.store.key_file)
    if path.is_file() and path.stat().st_size > 0 and writable_in_place(path):
        conn = None
        try:
            conn = sqlcipher_factory(path, key, config.store.busy_timeout_s)()
            if _up_to_date(conn):
                return int(conn.execute(FACE_ROSTER_SQL, [model_id]).fetchone()[0])
        except sqlcipher.Error:
            pass  # open_store below explains it
        finally:
            if conn is not None:
                conn.close()
    from kiosk.store.database import open_store
    with open_store(config) as store:
        return int(store.query(FACE_ROSTER_SQL, [model_id])[0]["n"])
