"""Reads that need nothing more than the store's SQLCipher connection.

A command that only needs one figure from the store (`kiosk config check`: the roster's size for the
decision threshold, and the model id it is counted for, as the store remembers it) starts in less CPU time on
the bare connection than through the full store. Nothing is written. Anything but an
up-to-date kiosk store goes through the full Store.open, which says what is wrong or migrates, as for every
other command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from kiosk.store import migrations
from kiosk.store.connection import STORE_KIND, sqlcipher_factory, writable_in_place
from kiosk.store.keys import resolve_key

# Active employees with at least one template of a model id: the roster size the threshold is set for.
FACE_ROSTER_SQL = ("SELECT count(DISTINCT t.employee_id) AS n FROM templates t "
                   "JOIN employees e ON e.id = t.employee_id WHERE e.active = 1 AND t.model_id = ?")


def _up_to_date(conn: Any) -> bool:  # noqa: ANN401 - a DB-API connection
    """Whether ``conn`` is on a kiosk store with no migration due (Store.open would change nothing)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"meta", "_migrations"} <= tables:
        return False
    kind = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    return kind is not None and kind[0] == STORE_KIND and not migrations.outstanding(done)


class _ReadOnlyMemory:
    """The store's meta values for a reader (what kiosk.face.pack's ``ModelMemory`` needs): anything computed
    here is not written back (the daemon writes it at its start)."""

    def __init__(self, read: Callable[[str], str | None]) -> None:
        self.get_meta = read

    def set_meta(self, key: str, value: str) -> None:
        pass


def face_roster_size(config, pack) -> int:  # noqa: ANN001 - KioskConfig, kiosk.face.pack.ModelPack
    """How many active employees have a template of the pack's model id (``pack.recall_model_id``: as the
    store remembers it while the recogniser file is unchanged), read with one SQLCipher connection when the
    store is an up-to-date kiosk store on a writable disk; otherwise through open_store, which raises the
    StoreError that says what is wrong (or migrates the store first)."""
    path = Path(config.store.path)
    key = resolve_key(config.store.key_file)
    if path.is_file() and path.stat().st_size > 0 and writable_in_place(path):
        conn = None
        try:
            conn = sqlcipher_factory(path, key, config.store.busy_timeout_s)()
            if _up_to_date(conn):
                def read(name: str) -> str | None:
                    row = conn.execute("SELECT value FROM meta WHERE key = ?", [name]).fetchone()
                    return row[0] if row else None
                model_id = pack.recall_model_id(_ReadOnlyMemory(read))
                return int(conn.execute(FACE_ROSTER_SQL, [model_id]).fetchone()[0])
        except sqlcipher.Error:
            pass  # open_store below explains it
        finally:
            if conn is not None:
                conn.close()
    from kiosk.store.database import open_store
    with open_store(config) as store:
        model_id = pack.recall_model_id(_ReadOnlyMemory(store.get_meta))
        return int(store.query(FACE_ROSTER_SQL, [model_id])[0]["n"])
