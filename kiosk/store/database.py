"""The encrypted store: SQLCipher connection, one atomic() for writes, migrations, meta and audit.

Storage takes its connection from outside (a factory), so the same code runs on SQLCipher in
production and on plain sqlite3 in the side-by-side benchmark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from hardware.rfid_protocols import CardFormat
from kiosk.base.errors import StoreError
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.store import migrations
from kiosk.store.anchors import ClockAnchors
from kiosk.store.connection import STORE_KIND, Connect, sqlcipher_factory
from kiosk.store.enrolments import EnrolmentOutbox
from kiosk.store.evidence import Evidence
from kiosk.store.keys import DbKey, resolve_key
from kiosk.store.punches import PunchLog
from kiosk.store.roster import Roster
from kiosk.store.signing import SigningKeys
from kiosk.store.sql import Database

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
DB_ERRORS = (sqlcipher.Error, sqlite3.Error)

def plain_factory(path: Path, busy_timeout_s: float = 5.0) -> Connect:
    """A plain sqlite3 connection factory (benchmarks compare against it; never for real data)."""

    def connect() -> Any:
        return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=busy_timeout_s)

    return connect


def explain_db_error(exc: Exception, path: Path | str, doing: str) -> StoreError:
    """Turn a SQLite/SQLCipher error into one sentence with what to do."""
    msg = str(exc).lower()
    if "disk is full" in msg or "disk i/o" in msg and "full" in msg:
        return StoreError(f"{doing} failed: the disk holding {path} is full; nothing was changed",
                          fix="Free space on that disk (old logs, exports), then try again. "
                          "Stored punches are intact.")
    if "readonly" in msg or "read-only" in msg:
        return StoreError(f"{doing} failed: {path} is on a read-only filesystem or not writable; "
                          "nothing was changed",
                          fix="Remount the filesystem read-write or fix the file's owner/permissions.")
    if "malformed" in msg or "corrupt" in msg:
        return StoreError(f"{doing} failed: {path} is damaged ({exc})",
                          fix="Stop the kiosk, copy the file aside (with its -wal file), and restore the latest "
                          "backup; punches already at the hub are safe there.")
    if "locked" in msg or "busy" in msg:
        return StoreError(f"{doing} failed: {path} is busy (another process holds the write lock)",
                          fix="Retry; if it persists, check for a stuck `kiosk` process.")
    if "unable to open" in msg:
        return StoreError(f"{doing} failed: cannot open {path}",
                          fix="Check the folder exists and is writable by the kiosk user.")
    return StoreError(f"{doing} failed on {path}: {exc}",
                      fix="Check the file and its disk; stored punches were not changed.")


def _not_decryptable(path: Path, key: DbKey) -> StoreError:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
        size = path.stat().st_size
    except OSError:
        head, size = b"", 0
    if head == SQLITE_HEADER:
        return StoreError(f"{path} is a plain, unencrypted SQLite file, not a kiosk store",
                          fix="Point store.path at the kiosk's database, or move this file away "
                          "and run `kiosk db init`.")
    if size < 1024:
        return StoreError(f"{path} is too short to be a kiosk store ({size} bytes): truncated or not ours",
                          fix="Restore the latest backup, or move the file away and run `kiosk db init`.")
    return StoreError(f"{path} cannot be decrypted with the key from {key.source}: "
                      "either the key is wrong or the file is damaged; nothing was changed",
                      fix="Use this kiosk's own key (systemd credential kiosk-db-key, store.key_file, "
                      "or KIOSK_DB_KEY); if the key is right, restore the file from a backup.")


class Store:
    """One database connection shared by the daemon's threads; writes go through atomic()."""

    def __init__(self, connect: Connect, path: Path | str = ":memory:", card_format: CardFormat = "dec10") -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.conn = connect()
            self._set_pragmas()
        except DB_ERRORS as exc:
            raise explain_db_error(exc, self.path, "opening the store") from None
        self.db = Database(self.conn)
        self.punches = PunchLog(self)
        self.roster = Roster(self, card_format)
        self.enrolments = EnrolmentOutbox(self)
        self.evidence = Evidence(self)
        self.anchors = ClockAnchors(self)
        self.signing = SigningKeys(self)

    def _set_pragmas(self) -> None:
        # Reading the schema is the first thing that needs the key to be right.
        self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        self.conn.execute("PRAGMA journal_mode=WAL").fetchone()
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA secure_delete=ON")
        self.conn.execute("PRAGMA foreign_keys=ON")

    # -- opening ---------------------------------------------------------

    @classmethod
    def open(cls, path: Path, key: DbKey, create: bool = False, busy_timeout_s: float = 5.0,
             card_format: CardFormat = "dec10") -> Store:
        """Open (or with ``create`` initialise) the encrypted store at ``path``."""
        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError(f"the folder for the store, {path.parent}, does not exist",
                             fix="Create it (the systemd unit's StateDirectory does), or fix store.path.")
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            raise StoreError(f"{path} is on a read-only filesystem; the store needs to write even to read "
                             "(write-ahead log)", fix="Remount it read-write (mount -o remount,rw), or copy "
                             "the .db file and its key to a writable disk to inspect it.")
        exists = path.exists() and path.stat().st_size > 0
        if not exists and not create:
            raise StoreError(f"no kiosk store at {path}",
                             fix="Initialise one with `kiosk db init`, or fix store.path.")
        try:
            store = cls(sqlcipher_factory(path, key, busy_timeout_s), path, card_format)
        except StoreError as exc:
            if "not a database" in exc.what or "encrypted" in exc.what:
                raise _not_decryptable(path, key) from None
            raise
        try:
            store._check_kind(create)
        except BaseException:
            store.close()
            raise
        return store

    def _check_kind(self, create: bool) -> None:
        tables = set(self.db.table_names())
        if not tables:
            if not create:
                raise StoreError(f"{self.path} is an empty database, not an initialised kiosk store",
                                 fix="Run `kiosk db init`.")
            self.migrate()
            return
        if "meta" not in tables or self.get_meta("kind") != STORE_KIND:
            raise StoreError(f"{self.path} is a database, but not a kiosk store",
                             fix="Point store.path at the kiosk's database.")
        if migrations.pending(self.db):
            self.migrate()

    def migrate(self) -> list[str]:
        """Apply pending named migrations in one transaction."""
        with self.atomic("migrating the store"):
            ran = migrations.migrate(self.db)
            if self.get_meta("kind") is None:
                self.set_meta("kind", STORE_KIND)
                self.set_meta("created_utc", iso_utc(utc_now()))
        if ran:
            log.info("store %s: applied migrations %s", self.path, ", ".join(ran))
        return ran

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        with self._lock:
            with contextlib.suppress(*DB_ERRORS):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------

    @contextlib.contextmanager
    def atomic(self, doing: str = "writing to the store") -> Iterator[Database]:
        """One write transaction: all of it is durably committed on exit, or none of it."""
        with self._lock:
            if self.conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except DB_ERRORS as exc:
                raise explain_db_error(exc, self.path, doing) from None
            try:
                yield self.db
                self.conn.execute("COMMIT")
            except DB_ERRORS as exc:
                self._rollback()
                raise explain_db_error(exc, self.path, doing) from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(*DB_ERRORS):
                self.conn.execute("ROLLBACK")

    def query(self, sql: str, params: Any = None, doing: str = "reading the store") -> list[dict]:
        """Run a read query and return rows as dicts, with errors explained."""
        with self._lock:
            try:
                return list(self.db.query(sql, params or []))
            except DB_ERRORS as exc:
                raise explain_db_error(exc, self.path, doing) from None

    # -- meta, audit, stats ----------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.atomic():
            self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                              "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])

    def audit(self, actor: str, action: str, subject: str = "", **detail: Any) -> None:
        """Record an admin action. ``detail`` must never hold biometric data."""
        with self.atomic("writing the audit log"):
            self.conn.execute(
                "INSERT INTO audit (ts_utc, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                [iso_utc(utc_now()), actor, action, subject, json.dumps(detail, sort_keys=True)])

    def audit_log(self, limit: int = 100) -> list[dict]:
        return self.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", [limit])

    def stats(self) -> dict[str, Any]:
        """Counts and sizes for `kiosk db stats` and device health. Read under the store's lock: the reads
        open savepoints, which another thread's punch must not take for its own transaction."""
        with self._lock:
            counts = {t: self.db.count(t) for t in ("employees", "cards", "templates", "punches", "audit")}
            active = self.query("SELECT count(*) AS n FROM employees WHERE active = 1")[0]["n"]
            span = self.query("SELECT min(ts_utc) AS first, max(ts_utc) AS last, "
                              "sum(clock_state != 'verified') AS unverified FROM punches")[0]
            models = self.query("SELECT model_id, count(*) AS n FROM templates GROUP BY model_id")
            schema = sorted(migrations.applied(self.db))
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "path": str(self.path), "bytes": size, "schema": schema,
            "employees_active": active, **counts,
            "punches_unverified_clock": span["unverified"] or 0,
            "first_punch_utc": span["first"], "last_punch_utc": span["last"],
            "templates_by_model": {r["model_id"]: r["n"] for r in models},
        }

    def rekey(self, new_key: DbKey) -> None:
        """Re-encrypt the whole database with a new key."""
        with self._lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.conn.execute("PRAGMA journal_mode=DELETE").fetchone()
                self.conn.execute(f"PRAGMA rekey = {new_key.pragma_literal}")
                self.conn.execute("PRAGMA journal_mode=WAL").fetchone()
            except DB_ERRORS as exc:
                raise explain_db_error(exc, self.path, "re-keying the store") from None

    def data_version(self) -> int:
        """Changes when another connection commits (SQLite's PRAGMA data_version): cheap to poll."""
        return int(self.query("PRAGMA data_version")[0]["data_version"])

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so erased pages are overwritten there too."""
        with self._lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except DB_ERRORS as exc:
                raise explain_db_error(exc, self.path, "checkpointing the store") from None


@contextlib.contextmanager
def open_private_copy(config) -> Iterator[Store]:  # noqa: ANN001 - KioskConfig
    """The store opened from a private copy of its file and WAL, for a medium that must not be written to
    (a seized SD card, a read-only mount). ``immutable=1`` would skip the WAL, and with it the newest
    punches of a kiosk that was switched off; the copy keeps them. The copy is deleted afterwards."""
    source = Path(config.store.path)
    if not source.is_file():
        raise StoreError(f"no kiosk store at {source}", fix="Check store.path (and that the card is mounted).")
    key = resolve_key(config.store.key_file)
    with tempfile.TemporaryDirectory(prefix="kiosk-store-copy-") as folder:
        copy = Path(folder) / source.name
        try:
            for suffix in ("", "-wal"):
                if Path(f"{source}{suffix}").exists():
                    shutil.copyfile(f"{source}{suffix}", f"{copy}{suffix}")
        except OSError as exc:
            raise StoreError(f"cannot copy {source} to {folder} to read it: {exc.strerror}",
                             fix="Free space in the temporary folder (set TMPDIR to a larger disk).") from None
        with Store.open(copy, key, busy_timeout_s=config.store.busy_timeout_s,
                        card_format=config.rfid.card_format) as store:
            yield store


def open_store(config, create: bool = False) -> Store:  # noqa: ANN001 - KioskConfig
    """Open the store named by a KioskConfig, with the key from its sources."""
    key = resolve_key(config.store.key_file)
    return Store.open(config.store.path, key, create=create, busy_timeout_s=config.store.busy_timeout_s,
                      card_format=config.rfid.card_format)
