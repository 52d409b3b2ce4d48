"""The hub's tables and named migrations, written once with per-dialect column types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sync.hub.db.sealed import SEALED_PREFIX

TYPES = {
    "sqlite": {"autoid": "INTEGER PRIMARY KEY AUTOINCREMENT", "big": "INTEGER", "real": "REAL",
               "blob": "BLOB"},
    "postgres": {"autoid": "BIGSERIAL PRIMARY KEY", "big": "BIGINT", "real": "DOUBLE PRECISION",
                 "blob": "BYTEA"},
}

# Timestamps are canonical UTC text (kiosk.base.timeutil.iso_utc) in both dialects: they sort as text
# and compare equal to what devices send. Booleans are 0/1 integers for the same reason.
_INITIAL = """
CREATE TABLE hub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value {big} NOT NULL);
INSERT INTO counters (name, value) VALUES ('punch', 0), ('roster', 0);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
    token_hash TEXT NOT NULL UNIQUE, created_utc TEXT NOT NULL, revoked_utc TEXT
);
CREATE TABLE registration_codes (
    code_hash TEXT PRIMARY KEY, branch TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL, expires_utc TEXT NOT NULL, used_utc TEXT, device_id TEXT
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY, branch TEXT NOT NULL, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL, model_id TEXT, template_dim INTEGER, software_version TEXT,
    registered_utc TEXT NOT NULL, revoked_utc TEXT, last_seen_utc TEXT,
    heartbeat TEXT NOT NULL DEFAULT '{{}}', heartbeat_utc TEXT,
    chain_seq {big} NOT NULL DEFAULT 0, chain_hash TEXT NOT NULL,
    punches {big} NOT NULL DEFAULT 0, duplicates {big} NOT NULL DEFAULT 0, rejected {big} NOT NULL DEFAULT 0
);
CREATE INDEX devices_branch ON devices (branch);
CREATE TABLE punches (
    hub_seq {big} PRIMARY KEY, id TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL, branch TEXT NOT NULL,
    seq {big} NOT NULL, employee_id TEXT NOT NULL, method TEXT NOT NULL, ts_utc TEXT NOT NULL,
    mono_ns {big} NOT NULL, boot_id TEXT NOT NULL, clock_state TEXT NOT NULL,
    score {real}, lat {real}, lon {real}, accuracy_m {real},
    flags TEXT NOT NULL, note TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    received_utc TEXT NOT NULL, chain TEXT NOT NULL
);
CREATE INDEX punches_device_seq ON punches (device_id, seq);
CREATE INDEX punches_branch ON punches (branch, hub_seq);
CREATE TABLE punch_rejects (
    id {autoid}, device_id TEXT NOT NULL, punch_id TEXT NOT NULL, seq {big},
    reason TEXT NOT NULL, body TEXT NOT NULL, received_utc TEXT NOT NULL
);
CREATE INDEX punch_rejects_device ON punch_rejects (device_id);
CREATE TABLE device_issues (
    id {autoid}, device_id TEXT NOT NULL, kind TEXT NOT NULL, seq_from {big}, seq_to {big},
    detail TEXT NOT NULL, first_seen_utc TEXT NOT NULL, resolved_utc TEXT
);
CREATE INDEX device_issues_device ON device_issues (device_id, resolved_utc);
CREATE TABLE employees (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, active INTEGER NOT NULL, created_utc TEXT NOT NULL,
    updated_utc TEXT NOT NULL, terminated_utc TEXT, terminate_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE employee_cards (card_id TEXT PRIMARY KEY, employee_id TEXT NOT NULL);
CREATE INDEX employee_cards_employee ON employee_cards (employee_id);
CREATE TABLE employee_branches (
    employee_id TEXT NOT NULL, branch TEXT NOT NULL, active INTEGER NOT NULL, change_seq {big} NOT NULL,
    PRIMARY KEY (employee_id, branch)
);
CREATE INDEX employee_branches_feed ON employee_branches (branch, change_seq);
CREATE TABLE templates (
    id {autoid}, employee_id TEXT NOT NULL, model_id TEXT NOT NULL, dim INTEGER NOT NULL,
    vector {blob} NOT NULL, quality {real}, source TEXT NOT NULL, created_utc TEXT NOT NULL
);
CREATE INDEX templates_employee_model ON templates (employee_id, model_id)
"""


def _statements(text: str, dialect: str) -> list[str]:
    body = text.format(**TYPES[dialect])
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


HubMigration = tuple[str, Callable[[str], list[str]]]

# Clock anchors from devices: (boot, monotonic ns) -> true UTC, to correct unverified punches.
_CLOCK_ANCHORS = """
CREATE TABLE clock_anchors (
    device_id TEXT NOT NULL, boot_id TEXT NOT NULL, mono_ns {big} NOT NULL, utc TEXT NOT NULL,
    source TEXT NOT NULL, PRIMARY KEY (device_id, boot_id, mono_ns)
)
"""

# Enrolments received from kiosks, by (device, the kiosk's enrolment id): a retry is a duplicate.
_DEVICE_ENROLMENTS = """
CREATE TABLE device_enrolments (
    device_id TEXT NOT NULL, enrolment_id {big} NOT NULL, employee_id TEXT NOT NULL, templates INTEGER NOT NULL,
    received_utc TEXT NOT NULL, PRIMARY KEY (device_id, enrolment_id)
)
"""

# The console: people who sign in (roles, their branches, lockout), their sessions, branches' time zones,
# an audit trail of console and HR actions, and punch direction/kind (a hub correction is a punch row of
# kind 'correction' from the pseudo-device 'hub', with its author; nothing is ever edited).
_CONSOLE_ACCOUNTS = """
CREATE TABLE hub_users (
    username TEXT PRIMARY KEY, role TEXT NOT NULL, branches TEXT NOT NULL DEFAULT '', password_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL, disabled_utc TEXT, failures INTEGER NOT NULL DEFAULT 0, locked_until_utc TEXT,
    last_login_utc TEXT
);
CREATE TABLE hub_sessions (
    token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL, created_utc TEXT NOT NULL,
    last_seen_utc TEXT NOT NULL
);
CREATE INDEX hub_sessions_user ON hub_sessions (username);
CREATE TABLE branches (code TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', timezone TEXT NOT NULL,
    updated_utc TEXT NOT NULL);
CREATE TABLE audit (
    id {autoid}, ts_utc TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_target ON audit (target)
"""

_CONSOLE_PUNCH_DIRECTION = """
ALTER TABLE punches ADD COLUMN direction TEXT;
ALTER TABLE punches ADD COLUMN kind TEXT NOT NULL DEFAULT 'punch';
ALTER TABLE punches ADD COLUMN author TEXT;
CREATE INDEX punches_employee_ts ON punches (employee_id, ts_utc);
CREATE INDEX punches_ts ON punches (ts_utc)
"""

# The outbound side: subscribers, events (stored once) and one delivery row per subscriber and event.
# A delivery is 'pending' until it is 'delivered', 'parked' (dead letter, with its last error) or
# 'skipped' by an operator; lease_* reserve it for one worker while it is in flight.
_OUTBOUND = """
CREATE TABLE outbound_subscriptions (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, url TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '[]',
    event_types TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', created_utc TEXT NOT NULL, removed_utc TEXT
);
CREATE TABLE outbound_events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT NOT NULL, time_utc TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE outbound_deliveries (
    id {autoid}, subscription_id TEXT NOT NULL, event_id TEXT NOT NULL, order_key TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_utc TEXT NOT NULL,
    lease_utc TEXT, lease_holder TEXT, last_error TEXT NOT NULL DEFAULT '', created_utc TEXT NOT NULL,
    done_utc TEXT, UNIQUE (subscription_id, event_id)
);
CREATE INDEX outbound_deliveries_due ON outbound_deliveries (status, next_attempt_utc);
CREATE INDEX outbound_deliveries_key ON outbound_deliveries (subscription_id, order_key, status, id);
CREATE TABLE outbound_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_utc TEXT NOT NULL);
CREATE TABLE first_punches (employee_id TEXT PRIMARY KEY, punch_id TEXT NOT NULL, hub_seq {big} NOT NULL);
INSERT INTO first_punches (employee_id, punch_id, hub_seq)
    SELECT employee_id, '', min(hub_seq) FROM punches GROUP BY employee_id;
CREATE TABLE enrolment_notices (
    employee_id TEXT NOT NULL, branch TEXT NOT NULL, device_id TEXT NOT NULL, noticed_utc TEXT NOT NULL,
    PRIMARY KEY (employee_id, branch)
);
ALTER TABLE devices ADD COLUMN roster_cursor {big} NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN offline_utc TEXT;
ALTER TABLE devices ADD COLUMN complete_utc TEXT
"""

# What the Frappe connector last made an employee's templates from (its Employee.image and the photo's
# SHA-256), so a changed photo in the HRMS replaces the templates.
_FRAPPE_PHOTOS = """
CREATE TABLE connector_photos (
    connector TEXT NOT NULL, employee_id TEXT NOT NULL, image TEXT NOT NULL, sha256 TEXT NOT NULL,
    updated_utc TEXT NOT NULL, PRIMARY KEY (connector, employee_id)
)
"""


def _seal_webhook_secrets(tx: Any, box: Any) -> None:
    """Webhook secrets were kept in clear: seal each row's list with the hub key."""
    rows = [r for r in tx.rows("SELECT id, secrets FROM outbound_subscriptions")
            if not r["secrets"].startswith(SEALED_PREFIX)]
    if rows and box is None:
        raise RuntimeError("sealing webhook secrets needs the hub key (open the database with open_hub_db)")
    for row in rows:
        tx.run("UPDATE outbound_subscriptions SET secrets = ? WHERE id = ?",
               [box.seal(row["secrets"], secrets_label(row["id"])), row["id"]])


def secrets_label(sub_id: str) -> str:
    """Associated data of a subscription's sealed secrets: they open only in their own row."""
    return f"outbound_subscriptions.secrets:{sub_id}"


# What the hub itself noticed about a punch (not part of the kiosk's hashed record): e.g. clock_ahead.
_HUB_FLAGS = """
ALTER TABLE punches ADD COLUMN hub_flags TEXT NOT NULL DEFAULT ''
"""

# Devices' punch-signing public keys, one row per key a device registered (its history: a punch keeps
# verifying against the key that signed it), and on each punch its signature and that key's id.
_SIGNING = """
CREATE TABLE device_keys (
    device_id TEXT NOT NULL, key_id TEXT NOT NULL, public_key TEXT NOT NULL, created_utc TEXT NOT NULL,
    retired_utc TEXT, PRIMARY KEY (device_id, key_id)
);
ALTER TABLE punches ADD COLUMN signature TEXT NOT NULL DEFAULT '';
ALTER TABLE punches ADD COLUMN key_id TEXT NOT NULL DEFAULT ''
"""

# Field staff punching from their phone (sync/hub/field): one-time pairing links, each phone's passkey (a
# field phone is also a row of devices, so its punches have their own seq and chain and go through ingest),
# per-employee geofence policy and sites, the punch challenges handed out (the record's hash) and, per punch,
# the WebAuthn assertion that proved the phone and the phone's own clock.
_FIELD = """
CREATE TABLE field_pairings (
    token_hash TEXT PRIMARY KEY, employee_id TEXT NOT NULL, label TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL,
    created_utc TEXT NOT NULL, expires_utc TEXT NOT NULL, used_utc TEXT, device_id TEXT
);
CREATE TABLE field_devices (
    device_id TEXT PRIMARY KEY, employee_id TEXT NOT NULL, credential_id TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL, sign_count {big} NOT NULL DEFAULT 0, label TEXT NOT NULL DEFAULT '',
    created_utc TEXT NOT NULL, revoked_utc TEXT
);
CREATE INDEX field_devices_employee ON field_devices (employee_id);
CREATE TABLE field_policies (employee_id TEXT PRIMARY KEY, policy TEXT NOT NULL, updated_utc TEXT NOT NULL);
CREATE TABLE field_sites (
    id {autoid}, employee_id TEXT NOT NULL, name TEXT NOT NULL, lat {real} NOT NULL, lon {real} NOT NULL,
    radius_m {real} NOT NULL, max_accuracy_m {real} NOT NULL
);
CREATE INDEX field_sites_employee ON field_sites (employee_id);
CREATE TABLE field_challenges (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, record TEXT NOT NULL, detail TEXT NOT NULL,
    created_utc TEXT NOT NULL, expires_utc TEXT NOT NULL, used_utc TEXT
);
CREATE TABLE field_assertions (
    punch_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, credential_id TEXT NOT NULL,
    authenticator_data TEXT NOT NULL, client_data_json TEXT NOT NULL, signature TEXT NOT NULL,
    phone_ts_utc TEXT NOT NULL, detail TEXT NOT NULL
)
"""

# A field punch's liveness clip (sync/hub/field/liveness.py): the challenge the hub drew, the frames judged so far
# (time, face box, keypoints, landmarks while a blink was awaited: erased once judged), the 1:1 scores, the verdict;
# spent by one punch.
_FIELD_CLIPS = """
CREATE TABLE field_clips (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, steps TEXT NOT NULL, created_utc TEXT NOT NULL,
    expires_utc TEXT NOT NULL, frames INTEGER NOT NULL DEFAULT 0, last_t_ms {big} NOT NULL DEFAULT -1,
    looks TEXT NOT NULL DEFAULT '[]', scores TEXT NOT NULL DEFAULT '[]', verdict TEXT NOT NULL DEFAULT 'pending',
    reason TEXT NOT NULL DEFAULT '', used_utc TEXT
);
CREATE INDEX field_clips_device ON field_clips (device_id, created_utc);
CREATE INDEX field_challenges_device ON field_challenges (device_id, created_utc)
"""

# Device issues about one person's punches (not_on_roster, unknown_employee) name them, so a kiosk
# enrolment of that id can resolve them.
_ISSUE_EMPLOYEE = """
ALTER TABLE device_issues ADD COLUMN employee_id TEXT
"""

# Faces enrolled at a kiosk are scoped to its branch (scope_branch; NULL: wherever the person works) and,
# for someone HR already manages, held (sent to no kiosk) until HR approves; approving lifts both. An
# employee first created by a kiosk enrolment has origin 'device:ID' until HR creates them; a dropped kiosk
# enrolment is kept as a row with dropped_utc, so its kiosk is told to erase its own copy.
_DEVICE_SCOPE = """
ALTER TABLE templates ADD COLUMN scope_branch TEXT;
ALTER TABLE templates ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE templates ADD COLUMN approved_by TEXT;
ALTER TABLE templates ADD COLUMN approved_utc TEXT;
UPDATE templates SET scope_branch = (SELECT d.branch FROM devices d WHERE 'device:' || d.id = templates.source)
    WHERE substr(source, 1, 7) = 'device:';
ALTER TABLE employees ADD COLUMN origin TEXT NOT NULL DEFAULT 'hr';
ALTER TABLE device_enrolments ADD COLUMN dropped_utc TEXT
"""

# Consents to face templates (PIPL), one row per consent given or withdrawn; never edited.
_CONSENTS = """
CREATE TABLE consents (
    id {autoid}, employee_id TEXT NOT NULL, kind TEXT NOT NULL, given_utc TEXT, text_version TEXT, language TEXT,
    taken_by TEXT NOT NULL, path TEXT NOT NULL, device_id TEXT, recorded_utc TEXT NOT NULL
);
CREATE INDEX consents_employee ON consents (employee_id, id)
"""

MIGRATIONS: list[HubMigration] = [
    ("001_initial", lambda dialect: _statements(_INITIAL, dialect)),
    ("002_clock_anchors", lambda dialect: _statements(_CLOCK_ANCHORS, dialect)),
    ("003_device_enrolments", lambda dialect: _statements(_DEVICE_ENROLMENTS, dialect)),
    ("console_001_accounts", lambda dialect: _statements(_CONSOLE_ACCOUNTS, dialect)),
    ("console_002_punch_direction", lambda dialect: _statements(_CONSOLE_PUNCH_DIRECTION, dialect)),
    ("outbound_001_deliveries", lambda dialect: _statements(_OUTBOUND, dialect)),
    ("outbound_002_connector_photos", lambda dialect: _statements(_FRAPPE_PHOTOS, dialect)),
    ("outbound_003_sealed_secrets", lambda dialect: []),
    ("hardening_001_hub_flags", lambda dialect: _statements(_HUB_FLAGS, dialect)),
    ("signing_001_device_keys", lambda dialect: _statements(_SIGNING, dialect)),
    ("field_001_phones", lambda dialect: _statements(_FIELD, dialect)),
    ("scope_001_issue_employee", lambda dialect: _statements(_ISSUE_EMPLOYEE, dialect)),
    ("scope_002_device_templates", lambda dialect: _statements(_DEVICE_SCOPE, dialect)),
    ("scope_003_consents", lambda dialect: _statements(_CONSENTS, dialect)),
    ("field_002_liveness", lambda dialect: _statements(_FIELD_CLIPS, dialect)),
]

# Steps a migration takes in Python after its statements (same transaction): (tx, the hub's SecretBox).
DATA_STEPS: dict[str, Callable[[Any, Any], None]] = {
    "outbound_003_sealed_secrets": _seal_webhook_secrets,
}
