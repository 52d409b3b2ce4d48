"""The hub's WebAuthn checks (sync/hub/field/webauthn.py) against a software authenticator made here with
`cryptography`: a good registration and assertion verify; each tampered part is refused with its reason. And
the field geofence: inside, outside, and a fix too coarse to tell."""

from __future__ import annotations

import hashlib
import json
import struct
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sync.errors import Unauthorized
from sync.hub.field.geofence import Site, place
from sync.hub.field.webauthn import b64url, verify_assertion, verify_registration

pytest_plugins = ["face_support", "sync_support"]

ORIGIN = "https://hub.example.com"
RP_ID = "hub.example.com"
CHALLENGE = hashlib.sha256(b"a punch record").digest()


def _cbor_bytes(data: bytes) -> bytes:
    return (bytes([0x58, len(data)]) if len(data) < 256 else bytes([0x59]) + struct.pack(">H", len(data))) + data


def _cbor_text(text: str) -> bytes:
    return bytes([0x60 + len(text)]) + text.encode()


class SoftAuthenticator:
    """A platform authenticator in software: one P-256 key, a counter."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = b"credential-0001"
        self.count = 0

    def _auth_data(self, flags: int, rp_id: str, attested: bytes = b"") -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self.count) + attested

    def register(self, challenge: bytes = CHALLENGE, origin: str = ORIGIN, flags: int = 0x45,
                 rp_id: str = RP_ID) -> tuple[bytes, bytes]:
        numbers = self.key.public_key().public_numbers()
        cose = (b"\xa5\x01\x02\x03\x26\x20\x01\x21" + _cbor_bytes(numbers.x.to_bytes(32, "big")) + b"\x22"
                + _cbor_bytes(numbers.y.to_bytes(32, "big")))
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose
        auth = self._auth_data(flags, rp_id, attested)
        attestation = (b"\xa3" + _cbor_text("fmt") + _cbor_text("none") + _cbor_text("attStmt") + b"\xa0"
                       + _cbor_text("authData") + _cbor_bytes(auth))
        client = json.dumps({"type": "webauthn.create", "challenge": b64url(challenge), "origin": origin}).encode()
        return client, attestation

    def assert_(self, challenge: bytes = CHALLENGE, origin: str = ORIGIN, flags: int = 0x05,
                rp_id: str = RP_ID) -> tuple[bytes, bytes, bytes]:
        self.count += 1
        auth = self._auth_data(flags, rp_id)
        client = json.dumps({"type": "webauthn.get", "challenge": b64url(challenge), "origin": origin}).encode()
        signature = self.key.sign(auth + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return client, auth, signature


def test_a_registration_and_an_assertion_verify_and_tampering_is_refused() -> None:
    phone = SoftAuthenticator()
    made = verify_registration(*phone.register(), CHALLENGE, ORIGIN)
    assert made.credential_id == b64url(phone.credential_id)
    count = verify_assertion(made.public_key_pem, made.sign_count, *phone.assert_(), CHALLENGE, ORIGIN)
    assert count == 1

    for bad, reason in ((phone.register(origin="https://evil.example"), "another site"),
                        (phone.register(challenge=b"other"), "another challenge"),
                        (phone.register(rp_id="evil.example"), "another relying party"),
                        (phone.register(flags=0x41), "did not verify its user")):
        with pytest.raises(Unauthorized, match=reason):
            verify_registration(*bad, CHALLENGE, ORIGIN)

    client, auth, signature = phone.assert_()
    with pytest.raises(Unauthorized, match="signature does not verify"):
        verify_assertion(made.public_key_pem, count, client, auth, signature[:-2] + b"\x00\x00", CHALLENGE, ORIGIN)
    with pytest.raises(Unauthorized, match="another challenge"):
        verify_assertion(made.public_key_pem, count, *phone.assert_(challenge=b"x" * 32), CHALLENGE, ORIGIN)
    with pytest.raises(Unauthorized, match="did not verify its user"):
        verify_assertion(made.public_key_pem, count, *phone.assert_(flags=0x01), CHALLENGE, ORIGIN)
    replayed = phone.assert_()
    newest = verify_assertion(made.public_key_pem, count, *replayed, CHALLENGE, ORIGIN)
    with pytest.raises(Unauthorized, match="counter went backwards"):
        verify_assertion(made.public_key_pem, newest, *replayed, CHALLENGE, ORIGIN)
    stranger = SoftAuthenticator()
    with pytest.raises(Unauthorized, match="signature does not verify"):
        verify_assertion(made.public_key_pem, newest, *stranger.assert_(), CHALLENGE, ORIGIN)


def test_field_geofence_uses_the_accuracy_disc() -> None:
    sites = [Site("A", 31.2304, 121.4737, 150), Site("B", 31.3000, 121.5000, 100)]
    assert place("flag", sites, 31.2304, 121.4737, 20).site == "A"
    inside_b = place("refuse", sites, 31.3000, 121.5001, 10)
    assert inside_b.site == "B" and not inside_b.flags and not inside_b.refused
    assert place("flag", sites, 31.2600, 121.5100, 20).flags == ["outside_geofence"]
    assert place("refuse", sites, 31.2600, 121.5100, 20).refused
    # 120 m from A's centre with 50 m accuracy: the disc straddles the edge, no verdict either way.
    coarse = place("refuse", sites, 31.2304 + 120 / 111_195, 121.4737, 50)
    assert coarse.flags == ["geofence_uncertain"] and not coarse.refused
    assert place("flag", sites, None, None, None).flags == ["no_gps_fix"]
    assert place("off", sites, 31.2600, 121.5100, 20).flags == []


# -- the phone's API over real HTTP, on SQLite and PostgreSQL, with the software authenticator ------------
# The clip: a real person (real_live_zubair_webcam.mov) turning right then left from 6 s (test_liveness.py's
# GENUINE cut), sent as the page films it (10 fps, 480 px JPEG). A recorded clip cannot follow a random
# challenge, so the test asks the hub for challenges until it draws the one the clip performs; the same frames
# against the other order are refused.

ZUBAIR = "real_live_zubair_webcam.mov"
TURNS = ["turn_right", "turn_left"]


def _field_hub(hub_config, face_engine, **field):  # noqa: ANN001, ANN003, ANN202
    from sync_support import start_hub

    from sync.hub.faces import EngineTemplateMaker
    config = hub_config.model_copy(update={"field": hub_config.field.model_copy(update=field)})
    return start_hub(config, maker=EngineTemplateMaker.from_engines([face_engine]))


def _paired_phone(hub, video_data, clip: str = ZUBAIR, at_s: tuple[float, float] = (0.5, 3.0)):  # noqa: ANN001, ANN202
    """Employee F1 enrolled from two frames of ``clip``, and a phone paired for them over HTTP."""
    import httpx
    from field_support import enrolment_photos
    from sync_support import CONSENT

    from sync.hub.field.webauthn import b64url_decode
    made = hub.hr.post("/v1/hr/employees", json={"employee_id": "F1", "name": "Li Na", "branches": ["B001"],
                                                 "photos": enrolment_photos(video_data / clip, list(at_s)),
                                                 "consent": CONSENT})
    assert made.status_code == 201, made.text
    token = hub.hr.post("/v1/hr/field/pairings", json={"employee_id": "F1"}).json()["link"].split("#", 1)[1]
    http = httpx.Client(base_url=hub.url, timeout=60)
    options = http.post("/v1/field/pair/options", json={"token": token}).json()
    phone = SoftAuthenticator()
    client, attestation = phone.register(b64url_decode(options["challenge"], "challenge"), hub.url,
                                         rp_id=hub.url.split("//")[1].split(":")[0])
    paired = http.post("/v1/field/pair/finish", json={"token": token, "client_data_json": b64url(client),
                                                      "attestation_object": b64url(attestation)})
    assert paired.status_code == 201, paired.text
    again = http.post("/v1/field/pair/finish", json={"token": token, "client_data_json": b64url(client),
                                                     "attestation_object": b64url(attestation)})
    assert again.status_code == 401 and "already used" in again.json()["error"]["message"]
    return http, phone, paired.json()["device_id"]


def _start(http, device: str, steps: list[str] | None = None) -> dict:  # noqa: ANN001
    """A new clip; with ``steps``, new clips until the hub happens to draw that challenge (6 are possible)."""
    for _ in range(300):
        started = http.post("/v1/field/punch/start", json={"device_id": device})
        assert started.status_code == 201, started.text
        if steps is None or started.json()["steps"] == steps:
            return started.json()
    raise AssertionError(f"the hub never drew {steps}")


def _clip_expiry(hub, clip_id: str):  # noqa: ANN001, ANN202
    from kiosk.base.timeutil import parse_iso
    with hub.db.transaction(write=False) as tx:
        return parse_iso(tx.row("SELECT expires_utc FROM field_clips WHERE id = ?", [clip_id])["expires_utc"])


def _film(http, device: str, clip: dict, frames: list[dict], piece: int = 8):  # noqa: ANN001, ANN202
    """Send the frames piece by piece, as the page does, until the hub's answer is not pending."""
    for i in range(0, len(frames), piece):
        answer = http.post("/v1/field/punch/frames", json={"device_id": device, "clip_id": clip["clip_id"],
                                                            "frames": frames[i:i + piece]})
        if answer.status_code != 200 or answer.json()["verdict"] != "pending":
            return answer
    return answer


def test_field_api_judges_the_clip_then_punches(hub_config, face_engine, video_data) -> None:  # noqa: ANN001
    from field_support import clip_frames

    from sync.hub.field.webauthn import b64url_decode

    hub = _field_hub(hub_config, face_engine, attempts_per_minute=600)
    try:
        http, phone, device = _paired_phone(hub, video_data)
        frames = clip_frames(video_data / ZUBAIR, 6.0, 8.0)
        assert 70 <= len(frames) <= 81

        # The hub draws each challenge: two distinct steps of the three, in a random order.
        drawn = [tuple(_start(http, device)["steps"]) for _ in range(24)]
        assert all(len(set(steps)) == 2 and set(steps) <= {"turn_left", "turn_right", "blink"} for steps in drawn)
        assert len(set(drawn)) >= 3, drawn
        if hub_config.database.backend == "sqlite":
            _a_failed_punch_write_keeps_no_assertion(hub, http, phone, device, frames)

        # Each clip is prepared as soon as it is live: a live clip is spent within the challenge's time and 10 s.
        clip = _start(http, device, TURNS)
        assert clip["mode"] == "challenge" and clip["timeout_s"] == 8.0 and clip["fps"] == 10
        live = _film(http, device, clip, frames)
        assert live.status_code == 200 and live.json()["verdict"] == "live" and live.json()["done"] == 2, live.text
        again = _film(http, device, clip, frames[-2:])
        assert again.status_code == 409 and "already judged live" in again.json()["error"]["message"]

        prepared = http.post("/v1/field/punch/prepare", json={
            "device_id": device, "direction": "IN", "lat": 31.2304, "lon": 121.4737, "accuracy_m": 15,
            "phone_ts_utc": "2026-01-01T00:00:00Z", "clip_id": clip["clip_id"]})
        assert prepared.status_code == 200, prepared.text
        reused = http.post("/v1/field/punch/prepare", json={
            "device_id": device, "direction": "IN", "phone_ts_utc": "2026-01-01T00:00:00Z",
            "clip_id": clip["clip_id"]})
        assert reused.status_code == 401 and "already used" in reused.json()["error"]["message"]
        challenge = b64url_decode(prepared.json()["challenge"], "challenge")
        client, auth, signature = phone.assert_(challenge, hub.url, rp_id=hub.url.split("//")[1].split(":")[0])
        confirm = {"challenge_id": prepared.json()["challenge_id"], "credential_id": b64url(phone.credential_id),
                   "client_data_json": b64url(client), "authenticator_data": b64url(auth),
                   "signature": b64url(signature)}
        stored = http.post("/v1/field/punch/confirm", json=confirm)
        assert stored.status_code == 201, stored.text
        replay = http.post("/v1/field/punch/confirm", json=confirm)
        assert replay.status_code == 401 and "already confirmed" in replay.json()["error"]["message"]

        # The same person doing the same turns, when the hub asked for the other order: refused at once.
        wrong = _start(http, device, TURNS[::-1])
        refused = _film(http, device, wrong, frames)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["message"] == ("liveness not passed: the head turned the wrong way "
                                                      "(or turned when no turn was asked)")
        later = _film(http, device, wrong, frames[-1:])
        assert later.status_code == 403 and "not accepted" in later.json()["error"]["message"]
        spent = http.post("/v1/field/punch/prepare", json={
            "device_id": device, "direction": "IN", "phone_ts_utc": "2026-01-01T00:00:00Z",
            "clip_id": wrong["clip_id"]})
        assert spent.status_code == 403 and "the head turned the wrong way" in spent.json()["error"]["message"]
        pending = _start(http, device)
        expires = _clip_expiry(hub, pending["clip_id"])
        sent = time.monotonic()
        _film(http, device, pending, frames[:3])
        # The hub's own time on the piece is given back to the phone, and no more than that.
        given = (_clip_expiry(hub, pending["clip_id"]) - expires).total_seconds()
        assert 0 < given <= time.monotonic() - sent, given
        early = http.post("/v1/field/punch/prepare", json={
            "device_id": device, "direction": "IN", "phone_ts_utc": "2026-01-01T00:00:00Z",
            "clip_id": pending["clip_id"]})
        assert early.status_code == 403 and "has not shown the challenge" in early.json()["error"]["message"]

        # No site set and the default policy flag: stored, flagged no_field_site; the phone's time kept beside;
        # the score is the median of the clip's 1:1 scores.
        rows = [r for r in hub.export() if r["employee_id"] == "F1"]
        assert len(rows) == 1 and rows[0]["id"] == stored.json()["punch_id"]
        assert rows[0]["hash"] == challenge.hex() and rows[0]["method"] == "field"
        assert rows[0]["flags"] == "no_field_site" and rows[0]["hub_flags"] == "webauthn"
        assert rows[0]["note"].startswith("phone_ts=2026-01-01T00:00:00")
        with hub.db.transaction(write=False) as tx:
            kept = tx.row("SELECT looks, scores, verdict, used_utc FROM field_clips WHERE id = ?", [clip["clip_id"]])
            assertions = tx.rows("SELECT punch_id FROM field_assertions")
        assert kept["looks"] == "[]" and kept["verdict"] == "live" and kept["used_utc"] is not None
        scores = json.loads(kept["scores"])
        assert len(scores) >= 2 and rows[0]["score"] == round(float(np.median(scores)), 4)
        assert [a["punch_id"] for a in assertions] == [rows[0]["id"]]
        http.close()
    finally:
        hub.hr.close()
        hub.server.stop()


def _confirm_body(hub, phone, prepared: dict) -> dict:  # noqa: ANN001
    from sync.hub.field.webauthn import b64url_decode
    challenge = b64url_decode(prepared["challenge"], "challenge")
    client, auth, signature = phone.assert_(challenge, hub.url, rp_id=hub.url.split("//")[1].split(":")[0])
    return {"challenge_id": prepared["challenge_id"], "credential_id": b64url(phone.credential_id),
            "client_data_json": b64url(client), "authenticator_data": b64url(auth), "signature": b64url(signature)}


def _a_failed_punch_write_keeps_no_assertion(hub, http, phone, device: str, frames: list[dict]) -> None:  # noqa: ANN001
    """The database refuses the punch row (a real SQLite trigger, as a full disk would): the assertion, written in
    the same transaction, is not kept either, and the phone's counter is not moved."""
    clip = _start(http, device, TURNS)
    assert _film(http, device, clip, frames).json()["verdict"] == "live"
    prepared = http.post("/v1/field/punch/prepare", json={
        "device_id": device, "direction": "IN", "phone_ts_utc": "2026-01-01T00:00:00Z", "clip_id": clip["clip_id"]})
    assert prepared.status_code == 200, prepared.text
    with hub.db.transaction() as tx:
        tx.run("CREATE TRIGGER refuse_punch BEFORE INSERT ON punches BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        count = tx.row("SELECT sign_count FROM field_devices WHERE device_id = ?", [device])["sign_count"]
    failed = http.post("/v1/field/punch/confirm", json=_confirm_body(hub, phone, prepared.json()))
    with hub.db.transaction() as tx:
        tx.run("DROP TRIGGER refuse_punch")
        assertions = tx.rows("SELECT punch_id FROM field_assertions")
        after = tx.row("SELECT sign_count FROM field_devices WHERE device_id = ?", [device])["sign_count"]
    assert failed.status_code == 500 and "internal error" in failed.json()["error"]["message"]
    assert assertions == [] and after == count
    assert [r for r in hub.export() if r["employee_id"] == "F1"] == []


def test_field_api_refuses_bad_clips_with_clear_messages(hub_config, face_engine, video_data) -> None:  # noqa: ANN001
    import base64

    import cv2
    import numpy as np
    from field_support import clip_frames, jpeg_b64

    hub = _field_hub(hub_config, face_engine, attempts_per_minute=3, challenge_timeout_s=2)
    try:
        http, _, device = _paired_phone(hub, video_data)
        frames = clip_frames(video_data / ZUBAIR, 0.0, 4.0)
        clip = _start(http, device)
        assert clip["max_frames"] == 31 and clip["max_piece_frames"] == 16

        def send(pieces: list[dict]) -> tuple[int, str]:
            answer = http.post("/v1/field/punch/frames", json={"device_id": device, "clip_id": clip["clip_id"],
                                                                "frames": pieces})
            return answer.status_code, answer.json()["error"]["message"]

        png = base64.b64encode(cv2.imencode(".png", np.zeros((360, 480, 3), np.uint8))[1].tobytes()).decode()
        assert send([{"t_ms": 0, "jpeg_b64": png}]) == (422, "frame 1 is a PNG image, not a JPEG")
        big = jpeg_b64(np.zeros((720, 1280, 3), np.uint8))
        assert send([{"t_ms": 0, "jpeg_b64": big}]) == (422, "frame 1 is 1280x720 pixels; frames are 120 to 640 px "
                                                              "a side")
        text = base64.b64encode(b"not an image at all, just text " * 5).decode()
        assert send([{"t_ms": 0, "jpeg_b64": text}]) == (422, "frame 1 is not a JPEG, PNG or WebP file: each "
                                                               "frame must be a JPEG")
        assert send([{"t_ms": 0, "jpeg_b64": "@" * 200}])[0] == 422
        assert send([{"t_ms": 0, "jpeg_b64": "A-_" * 50}]) == (422, "frame 1 is not base64")
        assert send(frames[:17]) == (422, "1 field(s) are invalid")
        assert send([frames[1], frames[0]]) == (422, f"frame 2 is at 0 ms, not after the frame before "
                                                     f"({frames[1]['t_ms']} ms)")
        first = http.post("/v1/field/punch/frames", json={"device_id": device, "clip_id": clip["clip_id"],
                                                           "frames": frames[:16]})
        assert first.status_code == 200 and first.json()["verdict"] == "pending", first.text
        assert send(frames[16:32]) == (413, "the clip has 32 frames; at most 31 (15 a second for 2 s)")
        unknown = http.post("/v1/field/punch/frames", json={"device_id": device, "clip_id": "x" * 22,
                                                             "frames": frames[:1]})
        assert unknown.status_code == 401 and "unknown or already used" in unknown.json()["error"]["message"]

        # Attempts per phone and minute: the 4th start is answered 429, with the seconds to wait.
        assert http.post("/v1/field/punch/start", json={"device_id": device}).status_code == 201
        assert http.post("/v1/field/punch/start", json={"device_id": device}).status_code == 201
        limited = http.post("/v1/field/punch/start", json={"device_id": device})
        assert limited.status_code == 429
        assert limited.json()["error"]["message"] == "too many punch attempts from this phone: at most 3 a minute"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.json()["error"]["fix"] == f"Wait {limited.headers['Retry-After']} s and try again."
        http.close()
    finally:
        hub.hr.close()
        hub.server.stop()


def test_field_api_refuses_a_clip_whose_face_changes_or_leaves(hub_config, face_engine, video_data) -> None:  # noqa: ANN001
    """One face throughout: the owner's frames (the lestari webcam clip, frontal) followed by another person's
    (the zubair clip) are refused when the face jumps; so is a clip where the face is gone over a second."""
    import numpy as np
    from field_support import clip_frames, jpeg_b64

    hub = _field_hub(hub_config, face_engine, attempts_per_minute=600)
    try:
        http, _, device = _paired_phone(hub, video_data, "real_live_lestari_webcam.mp4", (0.5, 2.0))
        owner = clip_frames(video_data / "real_live_lestari_webcam.mp4", 0.0, 2.0)
        other = clip_frames(video_data / ZUBAIR, 0.5, 1.0)
        last = owner[-1]["t_ms"]
        swapped = owner + [{**f, "t_ms": last + 100 * (i + 1)} for i, f in enumerate(other)]
        refused = _film(http, device, _start(http, device), swapped)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["message"] == "liveness not passed: the face in the picture changed"

        head = owner[:10]
        empty = jpeg_b64(np.full((360, 480, 3), 90, np.uint8))
        gone = [{"t_ms": head[-1]["t_ms"] + 100 * (i + 1), "jpeg_b64": empty} for i in range(15)]
        back = [{**f, "t_ms": gone[-1]["t_ms"] + 100 * (i + 1)} for i, f in enumerate(owner[10:])]
        refused = _film(http, device, _start(http, device), head + gone + back)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["message"] == "liveness not passed: the face left the picture"
        http.close()
    finally:
        hub.hr.close()
        hub.server.stop()


def test_a_whole_clip_is_judged_in_blink_mode(hub_config, face_engine, video_data) -> None:  # noqa: ANN001
    """Without a challenge the hub drew (a punch kept offline), a clip is judged in one go in blink mode: the
    blinking owner is live with their 1:1 score; the same owner's still frame is not; nor is another person."""
    from field_support import clip_frames, enrolment_photos
    from sync_support import CONSENT

    from kiosk.face.liveness import Verdict
    from sync.hub.faces import EngineTemplateMaker
    from sync.hub.field.liveness import decode_frames, judge_whole_clip, liveness_config

    hub = _field_hub(hub_config, face_engine)
    try:
        for employee_id, clip, at_s in (("F1", "blink_liveportrait_d13_phone_selfie.mp4", [0.0, 5.0]),
                                        ("F2", "blink_liveportrait_d9_glasses.mp4", [0.3, 8.0])):
            made = hub.hr.post("/v1/hr/employees", json={"employee_id": employee_id, "name": employee_id,
                                                         "branches": ["B001"], "consent": CONSENT,
                                                         "photos": enrolment_photos(video_data / clip, at_s)})
            assert made.status_code == 201, made.text
        maker = EngineTemplateMaker.from_engines([face_engine])
        cfg = liveness_config("challenge", 2, 8.0)
        frames = decode_frames([(f["t_ms"], f["jpeg_b64"]) for f in
                                clip_frames(video_data / "blink_liveportrait_d13_phone_selfie.mp4", 0.0, 4.0)])
        verdict, reason, score = judge_whole_clip(hub.db, maker, "F1", frames, cfg)
        assert (verdict, reason) == (Verdict.LIVE, "") and score is not None and score > 0.8
        still = [type(frames[0])(100 * i, frames[5].jpeg) for i in range(len(frames))]
        assert judge_whole_clip(hub.db, maker, "F1", still, cfg)[:2] == (Verdict.SPOOF, "no blink was seen")
        other = judge_whole_clip(hub.db, maker, "F2", frames, cfg)
        assert other[:2] == (Verdict.SPOOF, "the face does not match this phone's owner") and other[2] < 0.4
    finally:
        hub.hr.close()
        hub.server.stop()
