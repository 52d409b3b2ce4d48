"""Offline field punches: made with no signal, kept on the phone (IndexedDB), delivered when it is back online.

Online, the passkey signs the record's hash the hub built (phones.prepare). Offline there is no hub to build
it, so the phone writes a **claim** itself, a JSON text:

    {"v": 1, "id": UUID, "device_id": "fld_...", "direction": "IN", "phone_ts_utc": "...Z",
     "lat": .., "lon": .., "accuracy_m": .., "mocked": false,
     "media": {"frames": [[t_ms, SHA-256 hex of the frame's base64 JPEG], ...]}}

and its passkey signs **SHA-256 of the claim's exact bytes** (WebAuthn works without a network: the
authenticator is in the phone; user verification is required, so the person unlocks it). The selfie clip
(the frames the page filmed while the person blinked: no hub could draw a challenge) is not in the claim,
only each frame's time and SHA-256, so the claim stays small and the signature covers them. When the claim
arrives the hub:

1. reads the claim and checks each frame against its time and digest;
2. answers ``duplicate`` if that punch id is already stored for this phone and the assertion over this very
   claim verifies (delivery is exactly once: the page retries until it has an answer, and a retry is
   harmless);
3. refuses a claim whose phone time is more than ``field.offline_max_age_h`` before the hub receives it;
4. verifies the assertion over SHA-256(claim) with the phone's passkey (credential, origin, rpIdHash, UP+UV,
   a counter that must grow: the page delivers its queue in order, before any new online punch);
5. judges the clip whole, in blink mode, with the kiosk's liveness check and the face 1:1 across it
   (liveness.judge_whole_clip), and the place as online (phones.judge with that face);
6. builds the record with the claim's id, dated with the **phone's time**, ``clock_state = unverified``, the
   delay in ``note`` (``offline phone_ts=... received=... delay_s=...``), and stores it through ingest like an
   online punch; the claim is kept in the assertion's detail, so `kiosk hub verify-export` can check the row
   against what the passkey signed.

What this proves: the paired phone, unlocked by its owner, made this claim (place, direction, phone time,
clip), the clip is live (a natural blink) and the face is the employee's. What it cannot prove: the time (a
phone whose clock was set back can date a punch anywhere in the window: the punch says ``unverified`` and
carries its delay), nor that the blink was not filmed from a replay the phone chose (no random challenge is
possible offline: online punches keep the hub's challenge).
"""

from __future__ import annotations

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
from kiosk.face.config import LivenessConfig
from kiosk.face.liveness import Verdict
from sync.errors import Forbidden, Unauthorized
from sync.hub.db.base import HubDb
from sync.hub.faces import TemplateMaker
from sync.hub.field import liveness, webauthn
from sync.hub.field.config import FieldConfig
from sync.hub.field.face import FaceVerdict
from sync.hub.field.phones import Assertion, PunchAttempt, build_record, judge, paired, store
from sync.protocol import UUID_RE

log = logging.getLogger(__name__)

CLAIM_VERSION = 1
MAX_CLAIM_CHARS = 40_000
MAX_CLAIM_FRAMES = 200
OFFLINE_CLIP_S = 6.0  # what the page films with no signal (blink mode: most people blink every 2-5 s)


def clip_to_film(cfg: LivenessConfig) -> dict[str, Any]:
    """How the page films a clip with no signal (it keeps this from its last online visit): the online clip's
    rate and size, for OFFLINE_CLIP_S seconds within the liveness window."""
    return {"fps": liveness.FILM_FPS, "frame_px": liveness.FRAME_PX,
            "seconds": min(OFFLINE_CLIP_S, liveness.limit_s(cfg.model_copy(update={"mode": "blink"})) - 0.5)}

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
    frames: list[tuple[int, str]]  # (t_ms, SHA-256 hex of the frame's base64 JPEG)


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
    frames = media.get("frames") if isinstance(media, dict) else None
    if not isinstance(frames, list) or not 0 < len(frames) <= MAX_CLAIM_FRAMES or not all(
            isinstance(f, list) and len(f) == 2 and isinstance(f[0], int) and not isinstance(f[0], bool)
            and isinstance(f[1], str) and re.fullmatch(r"[0-9a-f]{64}", f[1]) for f in frames):
        raise InvalidInput("the offline punch's claim must list its frames' times and SHA-256",
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
                 _number(data, "accuracy_m"), data.get("mocked") is True, [(f[0], f[1]) for f in frames])


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


def deliver(db: HubDb, maker: TemplateMaker, claim_text: str, frames: list[tuple[int, str]], assertion: Assertion,
            origin: str, field: FieldConfig, cfg: LivenessConfig, max_ahead_s: float) -> dict[str, Any]:
    """Store an offline punch once (see the module's text); a repeat answers ``duplicate``. ``frames``: the
    clip as (t_ms, base64 JPEG); ``cfg``: the field's liveness rules (judged in blink mode)."""
    claim = read_claim(claim_text)
    sent = [(t_ms, hashlib.sha256(text.encode("ascii")).hexdigest()) for t_ms, text in frames]
    if len(sent) != len(claim.frames) or not all(
            a[0] == b[0] and secrets.compare_digest(a[1], b[1]) for a, b in zip(sent, claim.frames, strict=False)):
        raise InvalidInput("the offline punch's frames are not the ones its claim was signed with",
                           fix="Send the clip kept with the claim.")
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
    verdict, reason, score = liveness.judge_whole_clip(db, maker, phone.employee_id,
                                                       liveness.decode_frames(frames), cfg)
    if verdict is not Verdict.LIVE:
        log.info("field device %s: offline clip refused (%s)", phone.device_id, reason)
        raise Forbidden(f"not accepted: {reason}", fix="Punch again, looking at the camera and blinking.")
    attempt = PunchAttempt(claim.device_id, claim.direction, claim.lat, claim.lon, claim.accuracy_m,
                           claim.phone_ts_utc, claim.mocked)
    judged = judge(db, attempt, field.default_policy, FaceVerdict(True, score, ""))
    note = f"offline phone_ts={iso_utc(phone_time)} received={iso_utc(received)} delay_s={round(delay_s)}"
    record, detail = build_record(db, judged, attempt, claim.id, phone_time, "unverified", note, field.max_speed_kmh)
    detail.update(claim=claim.text, received_utc=iso_utc(received), delay_s=round(delay_s))
    log.info("field device %s: offline punch delivered %s late", phone.device_id, timedelta(seconds=round(delay_s)))
    return {**store(db, phone, record, detail, assertion, count, max_ahead_s), "delay_s": round(delay_s)}
