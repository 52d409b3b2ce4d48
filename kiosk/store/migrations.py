"""Named schema migrations, applied in order and recorded in the `_migrations` table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kiosk.store.signing import add_key

if TYPE_CHECKING:
    from kiosk.store.sql import Database

# Migrations take the store's Database (kiosk.store.sql); the name list (outstanding) is read without it.
Migration = tuple[str, Callable[["Database"], None]]


def _m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE employees (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            branch TEXT,
            created_utc TEXT NOT NULL,
            updated_utc TEXT NOT NULL
        );
        CREATE TABLE cards (
            card_id TEXT PRIMARY KEY,
            employee_id TEXT NOT NULL REFERENCES employees(id),
            created_utc TEXT NOT NULL
        );
        CREATE INDEX cards_employee ON cards(employee_id);
        CREATE TABLE templates (
            id INTEGER PRIMARY KEY,
            employee_id TEXT NOT NULL REFERENCES employees(id),
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            quality REAL,
            source TEXT NOT NULL,
            created_utc TEXT NOT NULL
        );
        CREATE INDEX templates_employee ON templates(employee_id);
        CREATE INDEX templates_model ON templates(model_id);
        CREATE TABLE punches (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            employee_id TEXT NOT NULL,
            method TEXT NOT NULL,
            ts_utc TEXT NOT NULL,
            mono_ns INTEGER NOT NULL,
            boot_id TEXT NOT NULL,
            clock_state TEXT NOT NULL,
            score REAL,
            lat REAL,
            lon REAL,
            accuracy_m REAL,
            flags TEXT NOT NULL DEFAULT '',
            note TEXT NOT NULL DEFAULT '',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX punches_employee ON punches(employee_id, seq);
        CREATE INDEX punches_ts ON punches(ts_utc);
        -- Punches are append-only: the store itself refuses to change or drop one.
        CREATE TRIGGER punches_no_update BEFORE UPDATE ON punches
            BEGIN SELECT RAISE(ABORT, 'punches are append-only'); END;
        CREATE TRIGGER punches_no_delete BEFORE DELETE ON punches
            BEGIN SELECT RAISE(ABORT, 'punches are append-only'); END;
        CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            ts_utc TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        """
    )


def _m003_clock_anchors(db: Database) -> None:
    # Monotonic-to-true-UTC anchors: they let the hub correct punches made on an untrusted clock.
    db.executescript(
        """
        CREATE TABLE clock_anchors (
            id INTEGER PRIMARY KEY,
            boot_id TEXT NOT NULL,
            mono_ns INTEGER NOT NULL,
            utc TEXT NOT NULL,
            source TEXT NOT NULL,
            offset_s REAL
        );
        CREATE INDEX clock_anchors_boot ON clock_anchors(boot_id, mono_ns);
        CREATE TABLE evidence (
            punch_id TEXT PRIMARY KEY,
            created_utc TEXT NOT NULL,
            jpeg BLOB NOT NULL
        );
        """
    )


def _m002_sync(db: Database) -> None:
    statements = [
        # The hub registration; the device token lives only here, inside the encrypted store.
        "CREATE TABLE sync_registration (id INTEGER PRIMARY KEY CHECK (id = 1), hub_url TEXT NOT NULL, "
        "device_id TEXT NOT NULL, token TEXT NOT NULL, branch TEXT NOT NULL, registered_utc TEXT NOT NULL)",
        # Punches the hub refused, with its reason; they are kept and never purged.
        "CREATE TABLE sync_rejected (seq INTEGER PRIMARY KEY, punch_id TEXT NOT NULL, reason TEXT NOT NULL, "
        "rejected_utc TEXT NOT NULL)",
        # When the hub acknowledged everything up to a seq: retention counts days from here.
        "CREATE TABLE sync_acks (upto_seq INTEGER PRIMARY KEY, acked_utc TEXT NOT NULL)",
        # Deleting a punch is allowed only for the retention purge: at or below the chain anchor
        # (meta chain_anchor_seq, set by the purge in the same transaction), at or below the prefix
        # the hub acknowledged (sync_state acked_seq), and never the newest punch, which carries the
        # chain on to the next append.
        "DROP TRIGGER punches_no_delete",
        "CREATE TRIGGER punches_no_delete BEFORE DELETE ON punches "
        "WHEN OLD.seq > coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'chain_anchor_seq'), 0) "
        "OR OLD.seq > coalesce((SELECT CAST(value AS INTEGER) FROM sync_state WHERE key = 'acked_seq'), 0) "
        "OR OLD.seq >= (SELECT max(seq) FROM punches) "
        "BEGIN SELECT RAISE(ABORT, 'punches are append-only; only punches the hub acknowledged can be purged'); END",
    ]
    for sql in statements:
        db.execute(sql)


def _m_enrolment_outbox(db: Database) -> None:
    # Enrolments made on this device (guided capture, import), waiting to be sent to the hub
    # (source 'device'). Rows point at templates; an erased person's rows are deleted with them.
    db.execute("CREATE TABLE enrolment_outbox (id INTEGER PRIMARY KEY, employee_id TEXT NOT NULL, "
               "model_id TEXT NOT NULL, template_ids TEXT NOT NULL, method TEXT NOT NULL, "
               "source TEXT NOT NULL DEFAULT 'device', created_utc TEXT NOT NULL, sent_utc TEXT)")
    db.execute("CREATE INDEX enrolment_outbox_unsent ON enrolment_outbox(sent_utc, id)")


def _m004_punch_direction(db: Database) -> None:
    # Direction (IN/OUT), kind (punch/correction) and a correction's author: part of the record and of
    # its hash when set (kiosk.base.record.LATER_FIELDS), so older punches keep verifying.
    db.execute("ALTER TABLE punches ADD COLUMN direction TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE punches ADD COLUMN kind TEXT NOT NULL DEFAULT 'punch'")
    db.execute("ALTER TABLE punches ADD COLUMN author TEXT NOT NULL DEFAULT ''")


def _m_verified_floor_index(db: Database) -> None:
    # The trusted-time floor (newest verified punch) is read at start, by every `kiosk punch` and every
    # heartbeat: this partial index answers it in O(log n) instead of walking every unverified punch.
    db.execute("CREATE INDEX punches_verified_ts ON punches(ts_utc) WHERE clock_state = 'verified'")


def _m_employee_card_and_face(db: Database) -> None:
    # A person the face engine cannot tell from another enrolled one (twins, siblings, look-alikes)
    # punches with card + face whatever punch.mode says (kiosk.punching.policy).
    db.execute("ALTER TABLE employees ADD COLUMN card_and_face INTEGER NOT NULL DEFAULT 0")


def _m_signing_keys(db: Database) -> None:
    # The kiosk's Ed25519 punch-signing keys (kiosk.store.signing): the newest one not retired signs what
    # the agent sends. A store made before keys existed gets its first key here, on its next open.
    db.execute("CREATE TABLE signing_keys (id INTEGER PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, "
               "private_key BLOB NOT NULL, public_key TEXT NOT NULL, created_utc TEXT NOT NULL, retired_utc TEXT)")
    add_key(db)


def _m_consents(db: Database) -> None:
    # Consents to face templates taken on this kiosk (PIPL), one row per consent given or withdrawn, and the
    # consent that goes to the hub with each enrolment.
    db.execute("CREATE TABLE consents (id INTEGER PRIMARY KEY, employee_id TEXT NOT NULL, kind TEXT NOT NULL, "
               "given_utc TEXT NOT NULL, text_version TEXT, language TEXT, taken_by TEXT NOT NULL, path TEXT NOT NULL, "
               "recorded_utc TEXT NOT NULL)")
    db.execute("CREATE INDEX consents_employee ON consents(employee_id, id)")
    db.execute("ALTER TABLE enrolment_outbox ADD COLUMN consent TEXT")


def _m_directed_punch_index(db: Database) -> None:
    # The IN/OUT rule reads a person's latest punch with a direction in the work day at every punch
    # (kiosk.punching.direction): this partial index answers it in O(log n) instead of reading every punch
    # the person ever made and sorting them.
    db.execute("CREATE INDEX punches_directed ON punches(employee_id, ts_utc) WHERE direction != ''")


def _m_drop_punches_ts_index(db: Database) -> None:
    # No query reads punches by ts_utc alone (the trusted-time floor has punches_verified_ts, the IN/OUT rule
    # punches_directed, `db export --since` walks seq), yet every append wrote a page of this index: in an
    # encrypted store each written page costs AES-256 and HMAC-SHA512 over all of it (README, the encrypted
    # store). Dropping it makes a punch write 4 pages instead of 5 (5 instead of 6 with IN/OUT).
    db.execute("DROP INDEX IF EXISTS punches_ts")


MIGRATIONS: list[Migration] = [
    ("001_initial", _m001_initial),
    ("003_clock_anchors_evidence", _m003_clock_anchors),
    ("002_sync", _m002_sync),
    ("ui_enrolment_outbox", _m_enrolment_outbox),
    ("004_punch_direction", _m004_punch_direction),
    ("punches_verified_floor_index", _m_verified_floor_index),
    ("employee_card_and_face", _m_employee_card_and_face),
    ("signing_keys", _m_signing_keys),
    ("scope_consents", _m_consents),
    ("punches_directed_index", _m_directed_punch_index),
    ("punches_ts_index_dropped", _m_drop_punches_ts_index),
]


def applied(db: Database) -> set[str]:
    """Names of migrations already recorded."""
    if "_migrations" not in db.table_names():
        return set()
    return {row["name"] for row in db.query("SELECT name FROM _migrations")}


def pending(db: Database) -> list[str]:
    """Names of migrations not yet applied, in order."""
    return outstanding(applied(db))


def outstanding(done: set[str]) -> list[str]:
    """Names of migrations not in ``done`` (the names already recorded), in order."""
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(db: Database) -> list[str]:
    """Apply pending migrations; the caller wraps this in one transaction. Returns what ran."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
    ran = []
    done = applied(db)
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(db)
        db.execute("INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                   [name, datetime.now(UTC).isoformat(timespec="seconds")])
        ran.append(name)
    return ran
