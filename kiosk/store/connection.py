"""The store's SQLCipher connection, kept apart from kiosk.store.database (which loads the punch log, the
roster, the signing keys' code...) so that kiosk.store.quickread can read one figure without them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from kiosk.store.keys import DbKey

STORE_KIND = "branch-kiosk-store"
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
