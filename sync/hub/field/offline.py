"""Offline field punches: made with no signal, kept on the phone (IndexedDB), delivered when it is back online.

Online, the passkey signs the record's hash the hub built (phones.prepare). Offline there is no hub to build
it, so the phone writes a **claim** itself, a JSON text:

    {"v": 1, "id": UUID, "device_id": "fld_...", "direction": "IN", "phone_ts_utc": "...Z",
     "lat": .., "lon": .., "accuracy_m": .., "mocked": false, "media": {"selfie_jpeg_b64": SHA-256 hex}}

and its passkey signs **SHA-256 of the claim's exact bytes** (WebAuthn works without a network: the
authenticator is in the phone; user verification is required, so the person unlocks it). The media (the
camera still) are not in the claim, only their SHA-256, so the claim stays small and the signature covers
them. When the claim arrives the hub:

1. reads the claim and checks each media item against its digest;
2. answers ``duplicate`` if that punch id is already stored for this phone and the assertion over this very
   claim verifies (delivery is exactly once: the page retries until it has an answer, and a retry is
   harmless);
3. refuses a claim whose phone time is more than ``field.offline_max_age_h`` before the hub receives it;
4. verifies the assertion over SHA-256(claim) with the phone's passkey (credential, origin, rpIdHash, UP+UV,
   a counter that must grow: the page delivers its queue in order, before any new online punch);
5. checks the face and the place exactly as online (phones.judge);
6. builds the record with the claim's id, dated with the **phone's time**, ``clock_state = unverified``, the
   delay in ``note`` (``offline phone_ts=... received=... delay_s=...``), and stores it through ingest like an
   online punch; the claim is kept in the assertion's detail, so `kiosk hub verify-export` can check the row
   against what the passkey signed.

What this proves: the paired phone, unlocked by its owner, made this claim (place, direction, phone time,
photo) and the face is the employee's. What it cannot prove: the time. A phone whose clock was set back can
date a punch anywhere in the window; that is why the punch says ``unverified`` and carries its delay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kiosk.base.errors import InvalidInput
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from sync.errors import Forbidden, Unauthorized
from sync.hub.db.base import HubDb
from sync.hub.faces import TemplateMaker
from sync.hub.field import webauthn
from sync.hub.field.config import FieldConfig
from sync.hub.field.phones import Assertion, PunchAttempt, build_record, judge, paired, store
from sync.protocol import UUID_RE

log = logging.getLogger(__name__)

CLAIM_VERSION = 1
MAX_CLAIM_CHARS = 4000
MEDIA = ("selfie_jpeg_b64",)
"""The media an offline punch carries, each by its SHA-256 in the claim."""


@dataclass(frozen=True)
class Claim:
    text: str
    id: str
    device_id: str
    direction: str
    phone_ts_utc: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    mocked: bool
    media: dict[str, str]


RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0), "accuracy_m": (0.0, 1e6)}  # as an online punch's


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    low, high = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidInput(f"the offline punch's {name} is not a number from {low:g} to {high:g}",
                           fix="Send the claim the page built.")
    return float(value)


def read_claim(text: str) -> Claim:
    """The claim's fields, checked for shape (what they mean is checked as for an online punch)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput("the offline punch's claim is not JSON", fix="Send the claim the page built.") from None
    if not isinstance(data, dict) or data.get("v") != CLAIM_VERSION:
        raise InvalidInput(f"the offline punch's claim is not version {CLAIM_VERSION}", fix="Reload the punch page.")
    media = data.get("media")
    if not isinstance(media, dict) or sorted(media) != sorted(MEDIA) or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in media.values()):
        raise InvalidInput(f"the offline punch's claim must list the SHA-256 of {', '.join(MEDIA)}",
                           fix="Reload the punch page.")
    ident, device_id = data.get("id"), data.get("device_id")
    if not isinstance(ident, str) or not re.match(UUID_RE, ident):
        raise InvalidInput("the offline punch's id is not a lower-case UUID", fix="Reload the punch page.")
    if not isinstance(device_id, str) or not re.fullmatch(r"fld_[0-9a-f]{1,60}", device_id):
        raise InvalidInput("the offline punch's device_id is not a field phone's", fix="Pair the phone again.")
    direction, phone_ts = data.get("direction"), data.get("phone_ts_utc")
    if not isinstance(direction, str) or not isinstance(phone_ts, str):
        raise InvalidInput("the offline punch has no direction or phone time", fix="Reload the punch page.")
    return Claim(text, ident, device_id, direction, phone_ts, _number(data, "lat"), _number(data, "lon"),
                 _number(data, "accuracy_m"), data.get("mocked") is True, dict(media))


def claim_challenge(text: str) -> bytes:
    """What the passkey signs for an offline punch: SHA-256 of the claim's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _stored(db: HubDb, claim: Claim) -> dict[str, Any] | None:
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT id, seq, ts_utc, direction, flags, hub_flags, clock_state, employee_id FROM punches "
                     "WHERE id = ? AND device_id = ?", [claim.id, claim.device_id])
    if row is None:
        return None
    return {"punch_id": row["id"], "seq": row["seq"], "ts_utc": row["ts_utc"], "direction": row["direction"],
            "flags": row["flags"], "hub_flags": row["hub_flags"], "employee_id": row["employee_id"],
            "clock_state": row["clock_state"], "status": "duplicate"}


def deliver(db: HubDb, maker: TemplateMaker, claim_text: str, media: dict[str, str], assertion: Assertion,
            origin: str, field: FieldConfig, max_ahead_s: float) -> dict[str, Any]:
    """Store an offline punch once (see the module's text); a repeat answers ``duplicate``."""
    claim = read_claim(claim_text)
    for name, digest in claim.media.items():
        value = media.get(name, "")
        if not secrets.compare_digest(hashlib.sha256(value.encode("ascii")).hexdigest(), digest):
            raise InvalidInput(f"the offline punch's {name} is not the one its claim was signed with",
                               fix="Send the photo kept with the claim.")
    phone = paired(db, claim.device_id)
    if not secrets.compare_digest(assertion.credential_id, phone.credential_id):
        raise Unauthorized("this passkey is not the one paired with this phone's owner",
                           fix="Punch from your own paired phone.")
    stored = _stored(db, claim)
    if stored is not None:  # sent again (an answer lost on the way): the same signed claim, nothing new stored
        webauthn.verify_assertion(phone.public_key_pem, 0, assertion.client_data_json, assertion.authenticator_data,
                                  assertion.signature, claim_challenge(claim.text), origin)
        return stored
    try:
        phone_time = parse_iso(claim.phone_ts_utc)
    except (ValueError, TypeError):
        raise InvalidInput("the phone's time is not an ISO 8601 UTC time", fix="Reload the punch page.") from None
    received = utc_now()
    delay_s = (received - phone_time).total_seconds()
    if delay_s > field.offline_max_age_h * 3600:
        raise Forbidden(f"this offline punch was made {delay_s / 3600:.1f} h ago (phone time "
                        f"{iso_utc(phone_time)}); the hub takes offline punches up to {field.offline_max_age_h:g} h "
                        "old (field.offline_max_age_h)", fix="Ask HR to record the punch by hand (a correction).")
    count = webauthn.verify_assertion(phone.public_key_pem, phone.sign_count, assertion.client_data_json,
                                      assertion.authenticator_data, assertion.signature,
                                      claim_challenge(claim.text), origin)
    try:
        selfie = base64.b64decode(media["selfie_jpeg_b64"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("selfie_jpeg_b64 is not base64", fix="Send the photo kept with the claim.") from None
    attempt = PunchAttempt(claim.device_id, claim.direction, claim.lat, claim.lon, claim.accuracy_m,
                           claim.phone_ts_utc, selfie, claim.mocked)
    judged = judge(db, maker, attempt, field.default_policy)
    note = f"offline phone_ts={iso_utc(phone_time)} received={iso_utc(received)} delay_s={round(delay_s)}"
    record, detail = build_record(db, judged, attempt, claim.id, phone_time, "unverified", note, field.max_speed_kmh)
    detail.update(claim=claim.text, received_utc=iso_utc(received), delay_s=round(delay_s))
    log.info("field device %s: offline punch delivered %s late", phone.device_id, timedelta(seconds=round(delay_s)))
    return {**store(db, phone, record, detail, assertion, count, max_ahead_s), "delay_s": round(delay_s)}
