"""Field phones: pairing links, passkeys, per-employee sites and policy, and a punch in two steps.

A paired phone is a row of ``devices`` (id ``fld_...``, no usable token, no signing key) with its
``field_devices`` row (employee, passkey). Its punches therefore have their own seq and hash chain and
are written by the hub's one punch writer, `sync.hub.ingest.ingest`, flagged ``webauthn`` (the possession
proof) instead of ``unsigned``.

A punch: ``start`` draws the liveness challenge and opens the clip the phone films (sync/hub/field/liveness.py
judges it, piece by piece: the kiosk's liveness check and the face 1:1 across the frames); ``prepare`` takes
the live clip, checks the place, then builds the record with the project's punch
definition (kiosk.base.record: the hub's receive time as ``ts_utc``, the next seq and the chain head of the
phone) and hands out its hash as the WebAuthn challenge; ``confirm`` verifies the passkey's assertion over
that hash and stores the record through ingest with the assertion beside it, in one transaction. An offline
punch (sync/hub/field/offline.py) has its clip judged whole on arrival (blink mode), then the same ``judge``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kiosk.base.errors import Conflict, InvalidInput, NotFound
from kiosk.base.record import DIRECTIONS, punch_hash
from kiosk.base.text import check_text
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now, uuid7
from kiosk.face.config import LivenessConfig
from sync.errors import Forbidden, TooManyRequests, Unauthorized
from sync.hub import audit
from sync.hub.db.base import HubDb
from sync.hub.devices import Device, token_hash
from sync.hub.faces import TemplateMaker
from sync.hub.field import liveness, webauthn
from sync.hub.field.face import FaceVerdict
from sync.hub.field.geofence import POLICIES, Placement, Site, place
from sync.hub.field.signals import fraud_signals
from sync.hub.ingest import ingest
from sync.protocol import EMPLOYEE_ID

log = logging.getLogger(__name__)

DEVICE_PREFIX = "fld_"
PROOF_FLAG = "webauthn"
MAX_SITES = 32


def _employee(tx: Any, employee_id: str) -> dict[str, Any]:
    if not re.match(EMPLOYEE_ID, employee_id):
        raise InvalidInput(f"employee id {employee_id!r} is not valid", fix="Use 1-64 letters, digits, _ . -")
    row = tx.row("SELECT id, name, active FROM employees WHERE id = ?", [employee_id])
    if row is None or not row["active"]:
        raise NotFound(f"no active employee {employee_id}", fix="Check the id (`kiosk hub` console, People).")
    return row


# -- pairing ---------------------------------------------------------------------------------------------


def create_pairing(db: HubDb, employee_id: str, ttl_min: float, actor: str, label: str = "") -> dict[str, str]:
    """A one-time pairing token for ``employee_id`` (only its hash is stored); the link is
    ``ORIGIN/field/pair#TOKEN`` (a fragment: it never reaches a server log)."""
    check_text(label, "label")
    token = secrets.token_urlsafe(32)
    now = utc_now()
    expires = iso_utc(now + timedelta(minutes=ttl_min))
    with db.transaction() as tx:
        _employee(tx, employee_id)
        tx.run("INSERT INTO field_pairings (token_hash, employee_id, label, created_by, created_utc, expires_utc) "
               "VALUES (?, ?, ?, ?, ?, ?)", [token_hash(token), employee_id, label[:64], actor, iso_utc(now), expires])
        audit.record(tx, actor, "field.pair", employee_id, expires_utc=expires)
    return {"employee_id": employee_id, "token": token, "path": f"/field/pair#{token}", "expires_utc": expires}


def pairing_challenge(token: str) -> bytes:
    """The registration challenge of a pairing: derived from its secret token, so nothing is kept for it."""
    return hashlib.sha256(b"field-pairing:" + token.encode("utf-8")).digest()


def _open_pairing(tx: Any, token: str, lock: str = "") -> dict[str, Any]:
    row = tx.row("SELECT employee_id, label, expires_utc, used_utc FROM field_pairings WHERE token_hash = ?" + lock,
                 [token_hash(token)])
    if row is None or row["used_utc"] is not None or row["expires_utc"] < iso_utc(utc_now()):
        raise Unauthorized("this pairing link is unknown, already used or expired",
                           fix="Ask HR for a new link (`kiosk hub field pair EMPLOYEE`).")
    return row


def pairing_options(db: HubDb, token: str) -> dict[str, Any]:
    """What the phone needs to make its passkey (the link is not spent yet)."""
    with db.transaction(write=False) as tx:
        pairing = _open_pairing(tx, token)
        emp = _employee(tx, pairing["employee_id"])
    return {"employee_id": emp["id"], "name": emp["name"], "challenge": webauthn.b64url(pairing_challenge(token)),
            "user_id": webauthn.b64url(hashlib.sha256(emp["id"].encode()).digest()[:16])}


def finish_pairing(db: HubDb, token: str, client_data_json: bytes, attestation_object: bytes, origin: str,
                   label: str = "") -> dict[str, str]:
    """Verify the new passkey and spend the link: the phone becomes a field device of the employee."""
    credential = webauthn.verify_registration(client_data_json, attestation_object, pairing_challenge(token), origin)
    device_id = DEVICE_PREFIX + secrets.token_hex(16)
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        pairing = _open_pairing(tx, token, tx.for_update)
        employee_id = pairing["employee_id"]
        if tx.row("SELECT device_id FROM field_devices WHERE credential_id = ?", [credential.credential_id]):
            raise Conflict("this passkey is already paired", fix="Ask HR to revoke the old pairing first.")
        branch = tx.row("SELECT branch FROM employee_branches WHERE employee_id = ? AND active = 1 ORDER BY branch",
                        [employee_id])
        name = (pairing["label"] or label or "phone")[:64]  # the name HR gave, else what the phone says
        tx.run("UPDATE field_pairings SET used_utc = ?, device_id = ? WHERE token_hash = ?",
               [now, device_id, token_hash(token)])
        # No usable token: a field phone proves itself with its passkey on each punch, never a bearer token.
        tx.run("INSERT INTO devices (id, branch, name, token_hash, status, registered_utc, last_seen_utc, chain_seq, "
               "chain_hash) VALUES (?, ?, ?, ?, 'active', ?, ?, 0, ?)",
               [device_id, branch["branch"] if branch else "field", f"field {employee_id} {name}",
                token_hash(secrets.token_urlsafe(32)), now, now, "0" * 64])
        tx.run("INSERT INTO field_devices (device_id, employee_id, credential_id, public_key, sign_count, label, "
               "created_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
               [device_id, employee_id, credential.credential_id, credential.public_key_pem, credential.sign_count,
                name, now])
        audit.record(tx, "phone", "field.paired", employee_id, device_id=device_id)
    log.info("paired field device %s", device_id)
    return {"device_id": device_id, "credential_id": credential.credential_id, "employee_id": employee_id}


def revoke(db: HubDb, device_id: str, actor: str) -> None:
    """HR revokes a phone: its passkey no longer punches (and ingest refuses the device)."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        row = tx.row("SELECT employee_id FROM field_devices WHERE device_id = ? AND revoked_utc IS NULL", [device_id])
        if row is None:
            raise NotFound(f"no paired field phone {device_id}", fix="List them with `kiosk hub field list`.")
        tx.run("UPDATE field_devices SET revoked_utc = ? WHERE device_id = ?", [now, device_id])
        tx.run("UPDATE devices SET status = 'revoked', revoked_utc = ? WHERE id = ?", [now, device_id])
        audit.record(tx, actor, "field.revoke", row["employee_id"], device_id=device_id)


def list_phones(db: HubDb, employee_id: str | None = None) -> list[dict[str, Any]]:
    where, params = ("WHERE f.employee_id = ?", [employee_id]) if employee_id else ("", [])
    with db.transaction(write=False) as tx:
        return tx.rows("SELECT f.device_id, f.employee_id, f.label, f.created_utc, f.revoked_utc, d.chain_seq AS "
                       f"punches, d.branch FROM field_devices f JOIN devices d ON d.id = f.device_id {where} "
                       "ORDER BY f.created_utc", params)


# -- sites and policy ------------------------------------------------------------------------------------


def set_sites(db: HubDb, employee_id: str, policy: str, sites: list[Site], actor: str) -> None:
    """Replace an employee's geofence policy (off | flag | refuse) and allowed sites."""
    if policy not in POLICIES:
        raise InvalidInput(f"geofence policy {policy!r} is not one of {', '.join(POLICIES)}",
                           fix="Use off, flag or refuse.")
    if len(sites) > MAX_SITES:
        raise InvalidInput(f"{len(sites)} sites; at most {MAX_SITES}", fix="Keep the sites the person works at.")
    for site in sites:
        check_text(site.name, "site name")
        if not (-90 <= site.lat <= 90 and -180 <= site.lon <= 180 and 5 <= site.radius_m <= 100_000):
            raise InvalidInput(f"site {site.name!r}: lat/lon out of range or radius not 5..100000 m",
                               fix="Give decimal degrees (WGS84) and a radius in metres.")
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        _employee(tx, employee_id)
        tx.run("DELETE FROM field_policies WHERE employee_id = ?", [employee_id])
        tx.run("INSERT INTO field_policies (employee_id, policy, updated_utc) VALUES (?, ?, ?)",
               [employee_id, policy, now])
        tx.run("DELETE FROM field_sites WHERE employee_id = ?", [employee_id])
        tx.many("INSERT INTO field_sites (employee_id, name, lat, lon, radius_m, max_accuracy_m) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(employee_id, s.name[:64], s.lat, s.lon, s.radius_m, s.max_accuracy_m) for s in sites])
        audit.record(tx, actor, "field.sites", employee_id, policy=policy, sites=len(sites))


def _policy_and_sites(tx: Any, employee_id: str, default_policy: str) -> tuple[str, list[Site]]:
    row = tx.row("SELECT policy FROM field_policies WHERE employee_id = ?", [employee_id])
    sites = [Site(r["name"], r["lat"], r["lon"], r["radius_m"], r["max_accuracy_m"]) for r in tx.rows(
        "SELECT name, lat, lon, radius_m, max_accuracy_m FROM field_sites WHERE employee_id = ? ORDER BY id",
        [employee_id])]
    return (row["policy"] if row else default_policy), sites


def employee_sites(db: HubDb, employee_id: str, default_policy: str) -> dict[str, Any]:
    """An employee's geofence policy (``own``: set for them, else the hub's default) and sites."""
    with db.transaction(write=False) as tx:
        _employee(tx, employee_id)
        own = tx.row("SELECT policy FROM field_policies WHERE employee_id = ?", [employee_id]) is not None
        policy, sites = _policy_and_sites(tx, employee_id, default_policy)
    return {"employee_id": employee_id, "policy": policy, "own": own, "sites": sites}


@dataclass(frozen=True)
class Phone:
    device_id: str
    employee_id: str
    name: str
    credential_id: str
    public_key_pem: str
    sign_count: int
    branch: str


def _phone(tx: Any, device_id: str) -> Phone:
    row = tx.row("SELECT f.device_id, f.employee_id, f.credential_id, f.public_key, f.sign_count, d.branch, e.name "
                 "FROM field_devices f JOIN devices d ON d.id = f.device_id JOIN employees e ON e.id = f.employee_id "
                 "WHERE f.device_id = ? AND f.revoked_utc IS NULL AND d.status = 'active' AND e.active = 1",
                 [device_id])
    if row is None:
        raise Unauthorized("this phone is not paired (or HR revoked it)",
                           fix="Ask HR for a pairing link (`kiosk hub field pair EMPLOYEE`).")
    return Phone(row["device_id"], row["employee_id"], row["name"], row["credential_id"], row["public_key"],
                 row["sign_count"], row["branch"])


def paired(db: HubDb, device_id: str) -> Phone:
    """The paired, unrevoked phone ``device_id`` of an active employee (else 401)."""
    with db.transaction(write=False) as tx:
        return _phone(tx, device_id)


def phone_view(db: HubDb, device_id: str, default_policy: str) -> dict[str, Any]:
    """What the punch page shows: whose phone it is, their sites and policy."""
    with db.transaction(write=False) as tx:
        phone = _phone(tx, device_id)
        policy, sites = _policy_and_sites(tx, phone.employee_id, default_policy)
    return {"employee_id": phone.employee_id, "name": phone.name, "policy": policy, "credential_id":
            phone.credential_id, "sites": [{"name": s.name, "lat": s.lat, "lon": s.lon, "radius_m": s.radius_m}
                                           for s in sites]}


# -- a punch ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PunchAttempt:
    """What the phone sends to prepare a punch (or keeps for an offline one)."""

    device_id: str
    direction: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    phone_ts_utc: str
    mocked: bool = False
    clip_id: str = ""  # online: the clip the hub judged live (offline: none, its clip is judged whole)


def _rate_limit(tx: Any, table: str, device_id: str, per_minute: int) -> None:
    """At most ``per_minute`` rows of ``table`` (field_clips, field_challenges) for this phone in the last minute."""
    since = iso_utc(utc_now() - timedelta(minutes=1))
    row = tx.row(f"SELECT COUNT(*) AS n, MIN(created_utc) AS oldest FROM {table} WHERE device_id = ? "  # noqa: S608
                 "AND created_utc > ?", [device_id, since])
    if row["n"] >= per_minute:
        wait = 60 - (utc_now() - parse_iso(row["oldest"])).total_seconds()
        raise TooManyRequests(f"too many punch attempts from this phone: at most {per_minute} a minute",
                              fix=f"Wait {max(1, round(wait))} s and try again.", retry_after_s=max(1, round(wait)))


def start(db: HubDb, device_id: str, cfg: LivenessConfig, per_minute: int) -> dict[str, Any]:
    """A punch begins: the hub draws the liveness challenge the phone will film (rate-limited per phone)."""
    with db.transaction() as tx:
        phone = _phone(tx, device_id)
        _rate_limit(tx, "field_clips", phone.device_id, per_minute)
        return liveness.new_clip(tx, phone.device_id, cfg)


def clip_frames(db: HubDb, maker: TemplateMaker, device_id: str, clip_id: str, frames: list[liveness.ClipFrame],
                cfg: LivenessConfig) -> dict[str, Any]:
    """A piece of the punch's clip, judged with what came before (sync/hub/field/liveness.py)."""
    with db.transaction(write=False) as tx:
        phone = _phone(tx, device_id)
    return liveness.add_frames(db, maker, phone.employee_id, phone.device_id, clip_id, frames, cfg)


@dataclass(frozen=True)
class Judged:
    """A punch attempt that passed the face and place checks: what the record is built from."""

    phone: Phone
    phone_time: datetime
    policy: str
    sites: list[Site]
    face: FaceVerdict
    placement: Placement


def judge(db: HubDb, attempt: PunchAttempt, default_policy: str, face: FaceVerdict) -> Judged:
    """The checks every field punch passes, online or offline: a paired phone, the face (``face``: the clip's
    verdict, judged live piece by piece online or whole offline), the place."""
    if attempt.direction not in DIRECTIONS:
        raise InvalidInput(f"direction {attempt.direction!r} is not IN or OUT", fix="Use the page's buttons.")
    try:
        phone_time = parse_iso(attempt.phone_ts_utc)
    except (ValueError, TypeError):
        raise InvalidInput("the phone's time is not an ISO 8601 UTC time",
                           fix="Send new Date().toISOString().") from None
    with db.transaction(write=False) as tx:
        phone = _phone(tx, attempt.device_id)
        policy, sites = _policy_and_sites(tx, phone.employee_id, default_policy)
    if not face.match:
        log.info("field device %s: face refused (%s)", phone.device_id, face.reason)
        raise Forbidden(f"face not accepted: {face.reason}", fix="Hold the phone at arm's length, face the light, "
                        "and try again.")
    placement = place(policy, sites, attempt.lat, attempt.lon, attempt.accuracy_m)
    if placement.refused:
        raise Forbidden("you are outside every site you may punch at",
                        fix="Punch at one of your sites, or ask HR to add this one.")
    return Judged(phone, phone_time, policy, sites, face, placement)


def build_record(db: HubDb, judged: Judged, attempt: PunchAttempt, punch_id: str, when: datetime, clock_state: str,
                 note: str, max_speed_kmh: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The punch record (the project's one definition, kiosk.base.record: the phone's next seq and its chain
    head) dated ``when``, and its detail: site, geofence checks, policy, phone time and the fraud signals
    (sync/hub/field/signals.py) that become hub flags."""
    phone = judged.phone
    with db.transaction(write=False) as tx:
        head = tx.row("SELECT chain_seq, chain_hash FROM devices WHERE id = ?", [phone.device_id])
        signals = fraud_signals(tx, phone.employee_id, when, attempt.lat, attempt.lon, attempt.accuracy_m,
                                attempt.mocked, judged.sites, max_speed_kmh)
    record: dict[str, Any] = {
        "id": punch_id, "seq": head["chain_seq"] + 1, "employee_id": phone.employee_id, "method": "field",
        "ts_utc": iso_utc(when), "mono_ns": 0, "boot_id": phone.device_id, "clock_state": clock_state,
        "score": judged.face.score, "lat": attempt.lat, "lon": attempt.lon, "accuracy_m": attempt.accuracy_m,
        "flags": ",".join(judged.placement.flags), "note": note[:500],
        "prev_hash": head["chain_hash"], "direction": attempt.direction, "kind": "punch", "author": "",
    }
    record["hash"] = punch_hash(record)
    detail = {"site": judged.placement.site, "geofence": judged.placement.checks, "policy": judged.policy,
              "phone_ts_utc": iso_utc(judged.phone_time), "hub_flags": signals}
    return record, detail


def prepare(db: HubDb, attempt: PunchAttempt, default_policy: str, ttl_s: float, per_minute: int,
            max_speed_kmh: float = 300.0) -> dict[str, Any]:
    """Take the clip the hub judged live (its score: the median 1:1 score) and check the place, then build the
    record; its hash is the challenge the passkey signs. The clip is spent with the challenge's row."""
    with db.transaction(write=False) as tx:
        score = liveness.live_clip_score(tx, attempt.clip_id, attempt.device_id)
    judged = judge(db, attempt, default_policy, FaceVerdict(True, score, ""))
    now = utc_now()
    skew_s = round((judged.phone_time - now).total_seconds(), 1)
    record, detail = build_record(db, judged, attempt, str(uuid7()), now, "verified",
                                  f"phone_ts={iso_utc(judged.phone_time)} skew_s={skew_s:+}", max_speed_kmh)
    challenge_id = secrets.token_urlsafe(16)
    with db.transaction() as tx:
        _rate_limit(tx, "field_challenges", judged.phone.device_id, per_minute)
        liveness.spend_live_clip(tx, attempt.clip_id, judged.phone.device_id)
        tx.run("INSERT INTO field_challenges (id, device_id, record, detail, created_utc, expires_utc) "
               "VALUES (?, ?, ?, ?, ?, ?)", [challenge_id, judged.phone.device_id, json.dumps(record),
                                             json.dumps(detail), iso_utc(now), iso_utc(now + timedelta(seconds=ttl_s))])
        tx.run("DELETE FROM field_challenges WHERE expires_utc < ?", [iso_utc(now - timedelta(hours=1))])
    return {"challenge_id": challenge_id, "challenge": webauthn.b64url(bytes.fromhex(record["hash"])),
            "credential_id": judged.phone.credential_id, "flags": judged.placement.flags,
            "hub_flags": detail["hub_flags"], "site": judged.placement.site, "hash": record["hash"]}


@dataclass(frozen=True)
class Assertion:
    challenge_id: str
    credential_id: str
    client_data_json: bytes
    authenticator_data: bytes
    signature: bytes


def confirm(db: HubDb, assertion: Assertion, origin: str, max_ahead_s: float) -> dict[str, Any]:
    """Verify the passkey's signature over the record's hash, then store the punch through ingest."""
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        row = tx.row("SELECT device_id, record, detail, expires_utc, used_utc FROM field_challenges WHERE id = ?"
                     + tx.for_update, [assertion.challenge_id])
        if row is None or row["used_utc"] is not None or row["expires_utc"] < now:
            raise Unauthorized("this punch was already confirmed or waited too long",
                               fix="Press the button again.")
        tx.run("UPDATE field_challenges SET used_utc = ? WHERE id = ?", [now, assertion.challenge_id])
    record, detail = json.loads(row["record"]), json.loads(row["detail"])
    with db.transaction(write=False) as tx:
        phone = _phone(tx, row["device_id"])
    if not secrets.compare_digest(assertion.credential_id, phone.credential_id):
        raise Unauthorized("this passkey is not the one paired with this phone's owner",
                           fix="Punch from your own paired phone.")
    count = webauthn.verify_assertion(phone.public_key_pem, phone.sign_count, assertion.client_data_json,
                                      assertion.authenticator_data, assertion.signature,
                                      bytes.fromhex(record["hash"]), origin)
    return store(db, phone, record, detail, assertion, count, max_ahead_s)


def store(db: HubDb, phone: Phone, record: dict[str, Any], detail: dict[str, Any], assertion: Assertion, count: int,
          max_ahead_s: float) -> dict[str, Any]:
    """Store the punch through ingest (flagged ``webauthn``, plus the fraud signals in ``detail``) and the verified
    assertion beside it, in ingest's transaction: one is never kept without the other."""

    def keep_assertion(tx: Any) -> None:
        """In ingest's transaction, the device's head locked."""
        head = tx.row("SELECT chain_seq, chain_hash FROM devices WHERE id = ?", [phone.device_id])
        if (head["chain_seq"] + 1, head["chain_hash"]) != (record["seq"], record["prev_hash"]):
            raise Conflict("another punch of this phone was stored meanwhile", fix="Press the button again.")
        if tx.run("UPDATE field_devices SET sign_count = ? WHERE device_id = ? AND sign_count = ?",
                  [count, phone.device_id, phone.sign_count]) != 1:
            raise Conflict("another punch of this phone was confirmed at the same moment", fix="Try again.")
        tx.run("INSERT INTO field_assertions (punch_id, device_id, credential_id, authenticator_data, "
               "client_data_json, signature, phone_ts_utc, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [record["id"], phone.device_id, assertion.credential_id,
                webauthn.b64url(assertion.authenticator_data), webauthn.b64url(assertion.client_data_json),
                webauthn.b64url(assertion.signature), detail["phone_ts_utc"], json.dumps(detail)])

    device = Device(phone.device_id, phone.branch, "field", None, None)
    result = ingest(db, device, [record], max_ahead_s, proof=PROOF_FLAG,
                    extra_flags={record["id"]: detail.get("hub_flags", [])}, within=keep_assertion).results[0]
    if result.status != "accepted":
        raise Conflict(f"the punch was not stored: {result.reason or result.status}", fix="Press the button again.")
    return {"punch_id": record["id"], "seq": record["seq"], "ts_utc": record["ts_utc"], "direction":
            record["direction"], "flags": record["flags"], "hub_flags": ",".join(detail.get("hub_flags", [])),
            "site": detail["site"], "employee_id": phone.employee_id, "chain": result.reason or "ok",
            "clock_state": record["clock_state"], "status": "stored"}
