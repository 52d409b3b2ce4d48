"""The hub's WebAuthn checks (sync/hub/field/webauthn.py) against a software authenticator made here with
`cryptography`: a good registration and assertion verify; each tampered part is refused with its reason. And
the field geofence: inside, outside, and a fix too coarse to tell."""

from __future__ import annotations

import hashlib
import json
import struct

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


def _jpeg_b64(path) -> str:  # noqa: ANN001
    import base64

    import cv2

    from kiosk.face.images import read_image
    ok, data = cv2.imencode(".jpg", read_image(path), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def test_field_api_pairs_punches_and_refuses_replays(hub_config, face_engine, face_data) -> None:  # noqa: ANN001
    import httpx
    from sync_support import CONSENT, start_hub

    from sync.hub.faces import EngineTemplateMaker
    from sync.hub.field.webauthn import b64url_decode

    hub = start_hub(hub_config, maker=EngineTemplateMaker.from_engines([face_engine]))
    try:
        photos = sorted((face_data / "John_Salley").glob("*.jpg"))
        assert hub.hr.post("/v1/hr/employees", json={"employee_id": "F1", "name": "Li Na", "branches": ["B001"],
                                                     "photos": [_jpeg_b64(p) for p in photos[:2]],
                                                     "consent": CONSENT}).status_code == 201
        link = hub.hr.post("/v1/hr/field/pairings", json={"employee_id": "F1"}).json()["link"]
        token = link.split("#", 1)[1]
        origin = hub.url
        phone_http = httpx.Client(base_url=hub.url, timeout=60)
        options = phone_http.post("/v1/field/pair/options", json={"token": token}).json()
        phone = SoftAuthenticator()
        client, attestation = phone.register(b64url_decode(options["challenge"], "challenge"), origin,
                                             rp_id=origin.split("//")[1].split(":")[0])
        body = {"token": token, "client_data_json": b64url(client), "attestation_object": b64url(attestation)}
        paired = phone_http.post("/v1/field/pair/finish", json=body)
        assert paired.status_code == 201, paired.text
        again = phone_http.post("/v1/field/pair/finish", json=body)
        assert again.status_code == 401 and "already used" in again.json()["error"]["message"]
        device = paired.json()["device_id"]

        prepared = phone_http.post("/v1/field/punch/prepare", json={
            "device_id": device, "direction": "IN", "lat": 31.2304, "lon": 121.4737, "accuracy_m": 15,
            "phone_ts_utc": "2026-01-01T00:00:00Z", "selfie_jpeg_b64": _jpeg_b64(photos[2])})
        assert prepared.status_code == 200, prepared.text
        challenge = b64url_decode(prepared.json()["challenge"], "challenge")
        client, auth, signature = phone.assert_(challenge, origin, rp_id=origin.split("//")[1].split(":")[0])
        confirm = {"challenge_id": prepared.json()["challenge_id"], "credential_id": b64url(phone.credential_id),
                   "client_data_json": b64url(client), "authenticator_data": b64url(auth),
                   "signature": b64url(signature)}
        stored = phone_http.post("/v1/field/punch/confirm", json=confirm)
        assert stored.status_code == 201, stored.text
        replay = phone_http.post("/v1/field/punch/confirm", json=confirm)
        assert replay.status_code == 401 and "already confirmed" in replay.json()["error"]["message"]
        # No site set and the default policy flag: stored, flagged no_field_site; the phone's time kept beside.
        rows = [r for r in hub.export() if r["employee_id"] == "F1"]
        assert len(rows) == 1 and rows[0]["id"] == stored.json()["punch_id"]
        assert rows[0]["hash"] == challenge.hex() and rows[0]["method"] == "field"
        assert rows[0]["flags"] == "no_field_site" and rows[0]["hub_flags"] == "webauthn"
        assert rows[0]["note"].startswith("phone_ts=2026-01-01T00:00:00")
        bad = phone_http.post("/v1/field/punch/prepare", json={
            "device_id": device, "direction": "SIDEWAYS", "phone_ts_utc": "x", "selfie_jpeg_b64": "A" * 200})
        assert bad.status_code == 422
        phone_http.close()
    finally:
        hub.hr.close()
        hub.server.stop()
