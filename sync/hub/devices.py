"""Credentials and devices on the hub: HR tokens, one-time codes, registration, heartbeats, status."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kiosk.base.errors import InvalidInput, NotFound
from kiosk.base.signing import key_id
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from sync.errors import Unauthorized
from sync.hub.db.base import HubDb, Tx
from sync.hub.outbound.events import chain_issue_event, device_state_event, emit, enrolment_events
from sync.protocol import BRANCH, DeviceIssue, DeviceStatus, Heartbeat, RegisterRequest

log = logging.getLogger(__name__)

ROLES = ("hr",)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
CODE_CHARS = 16
DEVICE_TOKEN_PREFIX = "kd1."
API_TOKEN_PREFIX = "kh1."
KEYS_FORMAT = "branch-kiosk device keys v1"  # `kiosk hub device keys` files


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is enough to keep them unusable at rest."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_CHARS, 4))


@dataclass(frozen=True)
class Device:
    """An authenticated device, as the API layer sees it."""

    id: str
    branch: str
    name: str
    model_id: str | None
    template_dim: int | None


# -- HR API tokens ----------------------------------------------------------------


def create_api_token(db: HubDb, role: str, label: str = "") -> dict[str, str]:
    """A new bearer token for HR clients; only its hash is stored."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", fix=f"Use one of: {', '.join(ROLES)}.")
    token_id = "tok_" + secrets.token_hex(6)
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as tx:
        tx.run("INSERT INTO api_tokens (id, role, label, token_hash, created_utc) VALUES (?, ?, ?, ?, ?)",
               [token_id, role, label, token_hash(token), iso_utc(utc_now())])
    return {"id": token_id, "role": role, "token": token}


def list_api_tokens(db: HubDb) -> list[dict[str, Any]]:
    with db.transaction(write=False) as tx:
        return tx.rows("SELECT id, role, label, created_utc, revoked_utc FROM api_tokens ORDER BY created_utc")


def revoke_api_token(db: HubDb, token_id: str) -> None:
    with db.transaction() as tx:
        if not tx.run("UPDATE api_tokens SET revoked_utc = ? WHERE id = ? AND revoked_utc IS NULL",
                      [iso_utc(utc_now()), token_id]):
            raise NotFound(f"no active API token {token_id}", fix="List them with `kiosk hub token list`.")


def api_role(db: HubDb, token: str) -> str:
    """The role of a valid HR token, else Unauthorized."""
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT role, revoked_utc FROM api_tokens WHERE token_hash = ?", [token_hash(token)])
    if row is None or row["revoked_utc"] is not None:
        raise Unauthorized("unknown or revoked API token", fix="Ask the hub operator for a token "
                           "(`kiosk hub token create --role hr`).")
    return row["role"]


# -- registration -------------------------------------------------------------------


def create_code(db: HubDb, branch: str, ttl_h: float, label: str = "") -> dict[str, str]:
    """A one-time registration code for a new kiosk of ``branch``."""
    if not re.match(BRANCH, branch):
        raise InvalidInput(f"branch {branch!r} is not valid", fix="Use 1-32 letters, digits, _ . -")
    code = _new_code()
    now = utc_now()
    expires = iso_utc(now + timedelta(hours=ttl_h))
    with db.transaction() as tx:
        tx.run("INSERT INTO registration_codes (code_hash, branch, label, created_utc, expires_utc) "
               "VALUES (?, ?, ?, ?, ?)", [token_hash(normalise_code(code)), branch, label, iso_utc(now), expires])
    return {"code": code, "branch": branch, "expires_utc": expires}


def register(db: HubDb, req: RegisterRequest) -> tuple[Device, str]:
    """Spend a one-time code: a new device with its own token (returned once)."""
    code_hash = token_hash(normalise_code(req.code))
    now = iso_utc(utc_now())
    device_id = "dev_" + secrets.token_hex(6)
    token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as tx:
        code = tx.row("SELECT branch, expires_utc, used_utc FROM registration_codes WHERE code_hash = ?"
                      + tx.for_update, [code_hash])
        if code is None or code["used_utc"] is not None or code["expires_utc"] < now:
            raise Unauthorized("registration code is unknown, already used or expired",
                               fix="Ask HR for a new code (`kiosk hub device add --branch BRANCH`).")
        tx.run("UPDATE registration_codes SET used_utc = ?, device_id = ? WHERE code_hash = ?",
               [now, device_id, code_hash])
        tx.run("INSERT INTO devices (id, branch, name, token_hash, status, model_id, template_dim, "
               "software_version, registered_utc, last_seen_utc, chain_seq, chain_hash) "
               "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)",
               [device_id, code["branch"], req.device_name, token_hash(token), req.model_id, req.template_dim,
                req.software_version, now, now, req.chain_seq, req.chain_hash])
        if req.public_key is not None:
            tx.run("INSERT INTO device_keys (device_id, key_id, public_key, created_utc) VALUES (?, ?, ?, ?)",
                   [device_id, key_id(req.public_key), req.public_key, now])
        if req.chain_seq > 0:
            add_issue(tx, device_id, "chain_start", 1, req.chain_seq,
                      f"punches 1..{req.chain_seq} were delivered or purged before this registration; "
                      "the chain check continues from there", resolved=True)
    log.info("registered device %s for branch %s", device_id, code["branch"])
    return Device(device_id, code["branch"], req.device_name, req.model_id, req.template_dim), token


@dataclass(frozen=True)
class DeviceKey:
    """A device's punch-signing public key (kiosk.base.signing)."""

    key_id: str
    public_key: str


def signing_key(db: HubDb, device_id: str) -> DeviceKey | None:
    """The key a device signs new punches with (its newest one not retired), or None: a device registered
    before kiosks had keys, whose punches are stored flagged ``unsigned``."""
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT key_id, public_key FROM device_keys WHERE device_id = ? AND retired_utc IS NULL "
                     "ORDER BY created_utc DESC LIMIT 1", [device_id])
    return DeviceKey(row["key_id"], row["public_key"]) if row else None


def device_keys(db: HubDb) -> dict[str, Any]:
    """Every device and every key it ever registered (``keys``: key id -> public key, empty for a device
    without one; a field phone's ``passkey``: its public key and each punch's WebAuthn proof): what
    `kiosk hub verify-export` checks a file against, offline."""
    with db.transaction(write=False) as tx:
        devices = tx.rows("SELECT id, branch FROM devices ORDER BY id")
        keys = tx.rows("SELECT device_id, key_id, public_key, created_utc, retired_utc FROM device_keys "
                       "ORDER BY device_id, created_utc")
        phones = tx.rows("SELECT device_id, employee_id, public_key FROM field_devices ORDER BY device_id")
        proofs = tx.rows("SELECT punch_id, device_id, authenticator_data, client_data_json, signature, detail "
                         "FROM field_assertions ORDER BY punch_id")
    out: dict[str, Any] = {d["id"]: {"branch": d["branch"], "keys": {}} for d in devices}
    for key in keys:
        out.setdefault(key["device_id"], {"branch": None, "keys": {}})["keys"][key["key_id"]] = key["public_key"]
    # A field phone signs with its passkey: its public key, and per punch the assertion (and, for a punch made
    # offline, the claim the passkey signed: sync/hub/field/offline.py).
    for phone in phones:
        out.setdefault(phone["device_id"], {"branch": None, "keys": {}})["passkey"] = {
            "employee_id": phone["employee_id"], "public_key": phone["public_key"], "proofs": {}}
    for proof in proofs:
        passkey = out.get(proof["device_id"], {}).get("passkey")
        if passkey is not None:
            claim = json.loads(proof["detail"]).get("claim")
            passkey["proofs"][proof["punch_id"]] = {
                "authenticator_data": proof["authenticator_data"], "client_data_json": proof["client_data_json"],
                "signature": proof["signature"], **({"claim": claim} if claim else {})}
    return {"format": KEYS_FORMAT, "devices": out}


def authenticate_device(db: HubDb, token: str) -> Device:
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT id, branch, name, status, model_id, template_dim FROM devices WHERE token_hash = ?",
                     [token_hash(token)])
    if row is None or row["status"] != "active":
        raise Unauthorized("this device's token is unknown or was revoked",
                           fix="Register the kiosk again with a new code (`kiosk sync register`).")
    return Device(row["id"], row["branch"], row["name"], row["model_id"], row["template_dim"])


def revoke_device(db: HubDb, device_id: str) -> None:
    with db.transaction() as tx:
        if not tx.run("UPDATE devices SET status = 'revoked', revoked_utc = ? WHERE id = ? AND status = 'active'",
                      [iso_utc(utc_now()), device_id]):
            raise NotFound(f"no active device {device_id}", fix="List devices with `kiosk hub device list`.")
    log.info("revoked device %s", device_id)


def add_issue(tx: Tx, device_id: str, kind: str, seq_from: int | None, seq_to: int | None, detail: str,
              resolved: bool = False, employee_id: str | None = None) -> None:
    """Record what the hub saw about a device (``employee_id`` when it concerns one person's punches)."""
    now = iso_utc(utc_now())
    tx.run("INSERT INTO device_issues (device_id, kind, seq_from, seq_to, detail, first_seen_utc, resolved_utc, "
           "employee_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           [device_id, kind, seq_from, seq_to, detail, now, now if resolved else None, employee_id])
    if not resolved:
        log.warning("device %s: %s at seq %s..%s: %s", device_id, kind, seq_from, seq_to, detail)
        emit(tx, [chain_issue_event(device_id, kind, seq_from, seq_to, detail)])


# -- heartbeat and status -------------------------------------------------------------


def heartbeat(db: HubDb, device: Device, beat: Heartbeat) -> None:
    """Record a device's health report and the model it runs now; a device that was offline is online again,
    and the roster cursor it reports tells which new hires' templates reached its branch."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        before = tx.row("SELECT id, branch, heartbeat_utc, offline_utc, roster_cursor FROM devices WHERE id = ?"
                        + tx.for_update, [device.id])
        # A heartbeat with nothing left to push vouches that every punch made before it is at the hub.
        tx.run("UPDATE devices SET heartbeat = ?, heartbeat_utc = ?, last_seen_utc = ?, software_version = ?, "
               "model_id = ?, template_dim = ?, offline_utc = NULL, roster_cursor = ?, "
               "complete_utc = CASE WHEN ? = 0 THEN ? ELSE complete_utc END WHERE id = ?",
               [json.dumps(beat.model_dump(exclude={"clock_anchors"}), sort_keys=True), now, now,
                beat.software_version, beat.model_id, beat.template_dim,
                max(beat.roster_cursor, before["roster_cursor"]), beat.backlog, now, device.id])
        events = [device_state_event(True, before, now)] if before["offline_utc"] else []
        events += enrolment_events(tx, {**before, "model_id": beat.model_id}, before["roster_cursor"],
                                   beat.roster_cursor, now)
        emit(tx, events)
        if beat.clock_anchors:
            tx.many("INSERT INTO clock_anchors (device_id, boot_id, mono_ns, utc, source) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (device_id, boot_id, mono_ns) DO NOTHING",
                    [(device.id, a.boot_id, a.mono_ns, a.utc, a.source) for a in beat.clock_anchors])
    if beat.model_id != device.model_id:
        log.info("device %s now runs model %s", device.id, (beat.model_id or "none")[:12])


def mark_offline(db: HubDb, now: str, silent_since: str) -> list[str]:
    """Active devices without a heartbeat since ``silent_since`` become offline (once); returns their ids."""
    marked = []
    with db.transaction() as tx:
        rows = tx.rows("SELECT id, branch, heartbeat_utc FROM devices WHERE status = 'active' AND offline_utc IS NULL "
                       "AND coalesce(heartbeat_utc, registered_utc) < ?", [silent_since])
        for row in rows:
            if tx.run("UPDATE devices SET offline_utc = ? WHERE id = ? AND offline_utc IS NULL", [now, row["id"]]):
                emit(tx, [device_state_event(False, row, now)])
                marked.append(row["id"])
    for device_id in marked:
        log.warning("device %s is offline: no heartbeat since %s", device_id, silent_since)
    return marked


def model_dims_in_use(db: HubDb) -> dict[str, int | None]:
    """Model ids (and template sizes) that active devices run."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT DISTINCT model_id, template_dim FROM devices "
                       "WHERE status = 'active' AND model_id IS NOT NULL")
    return {r["model_id"]: r["template_dim"] for r in rows}


DEFAULT_OFFLINE_AFTER_S = 300.0


def _state(row: dict[str, Any], offline_after_s: float) -> tuple[str, float | None]:
    """online / offline by the age of the last heartbeat; revoked; never (no heartbeat yet)."""
    age = (utc_now() - parse_iso(row["heartbeat_utc"])).total_seconds() if row["heartbeat_utc"] else None
    if row["status"] != "active":
        return "revoked", age
    if age is None:
        return "never", None
    return ("online" if age <= offline_after_s else "offline"), round(age, 1)


def _status(row: dict[str, Any], open_issues: int, issues: list[dict[str, Any]],
            offline_after_s: float = DEFAULT_OFFLINE_AFTER_S) -> DeviceStatus:
    state, age = _state(row, offline_after_s)
    return DeviceStatus(state=state, heartbeat_age_s=age,
        device_id=row["id"], branch=row["branch"], name=row["name"], status=row["status"],
        model_id=row["model_id"], software_version=row["software_version"], registered_utc=row["registered_utc"],
        last_seen_utc=row["last_seen_utc"], heartbeat_utc=row["heartbeat_utc"],
        heartbeat=json.loads(row["heartbeat"] or "{}"), punches=row["punches"], duplicates=row["duplicates"],
        rejected=row["rejected"], chain_seq=row["chain_seq"], open_issues=open_issues,
        issues=[DeviceIssue(**{k: i[k] for k in DeviceIssue.model_fields}) for i in issues])


def list_devices(db: HubDb, branch: str | None = None, branches: list[str] | None = None,
                 offline_after_s: float = DEFAULT_OFFLINE_AFTER_S) -> list[DeviceStatus]:
    """Devices of ``branch`` (or of ``branches``; every one when both are None), with their state."""
    with db.transaction(write=False) as tx:
        sql, params = "SELECT * FROM devices", []
        if branch:
            sql, params = sql + " WHERE branch = ?", [branch]
        elif branches is not None:
            where, params = tx.in_list("branch", branches)
            sql += " WHERE " + where
        rows = tx.rows(sql + " ORDER BY branch, id", params)
        counts = {r["device_id"]: r["n"] for r in tx.rows(
            "SELECT device_id, count(*) AS n FROM device_issues WHERE resolved_utc IS NULL GROUP BY device_id")}
    return [_status(r, counts.get(r["id"], 0), [], offline_after_s) for r in rows]


def device_status(db: HubDb, device_id: str, issue_limit: int = 100,
                  offline_after_s: float = DEFAULT_OFFLINE_AFTER_S) -> DeviceStatus:
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT * FROM devices WHERE id = ?", [device_id])
        if row is None:
            raise NotFound(f"no device {device_id}", fix="List devices with GET /v1/hr/devices.")
        issues = tx.rows("SELECT kind, seq_from, seq_to, detail, first_seen_utc, resolved_utc, employee_id "
                         "FROM device_issues "
                         "WHERE device_id = ? ORDER BY id DESC LIMIT ?", [device_id, issue_limit])
        open_n = tx.row("SELECT count(*) AS n FROM device_issues WHERE device_id = ? AND resolved_utc IS NULL",
                        [device_id])["n"]
    return _status(row, open_n, issues, offline_after_s)
