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
