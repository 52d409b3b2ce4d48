"""WebAuthn for field phones, verified here with `cryptography`: registration ('none' attestation, ES256
platform passkeys) and assertions (a punch's possession proof).

Only what a paired phone needs: the credential's public key must be ES256 (COSE alg -7, P-256), the
attestation is not checked (format 'none' or whatever the phone sends: the pairing link, not the
authenticator's make, is what makes the phone trusted), user presence and user verification are required.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kiosk.base.errors import InvalidInput
from sync.errors import Unauthorized

FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified (the phone's biometric or PIN)
FLAG_AT = 0x40  # attested credential data follows
COSE_ES256 = -7


def b64url_decode(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise InvalidInput(f"{what} is not base64url", fix="Send what the browser's WebAuthn call returned.") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rp_id_of(origin: str) -> str:
    """The relying party id for an origin: its host name."""
    return urlsplit(origin).hostname or ""


# -- a minimal CBOR reader (RFC 8949): what attestation objects and COSE keys use ------------------------


class _Cbor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ValueError("truncated CBOR")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def _length(self, info: int) -> int:
        if info < 24:
            return info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise ValueError("indefinite or reserved CBOR length")
        return int.from_bytes(self._take(sizes[info]), "big")

    def item(self, depth: int = 0) -> Any:
        if depth > 8:
            raise ValueError("CBOR nested too deep")
        head = self._take(1)[0]
        major, info = head >> 5, head & 0x1F
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info in simple:
                return simple[info]
            raise ValueError("unsupported CBOR simple value")
        length = self._length(info)
        if major == 0:
            return length
        if major == 1:
            return -1 - length
        if major == 2:
            return self._take(length)
        if major == 3:
            return self._take(length).decode("utf-8")
        if major == 4:
            return [self.item(depth + 1) for _ in range(length)]
        if major == 5:
            return {self.item(depth + 1): self.item(depth + 1) for _ in range(length)}
        raise ValueError("unsupported CBOR type")


def cbor_first(data: bytes) -> tuple[Any, int]:
    """The first CBOR item in ``data`` and how many bytes it took."""
    reader = _Cbor(data)
    return reader.item(), reader.pos


# -- checks ---------------------------------------------------------------------------------------------


def _client_data(raw: bytes, kind: str, challenge: bytes, origin: str) -> None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized("clientDataJSON is not JSON", fix="Send what the browser returned.") from None
    if not isinstance(data, dict) or data.get("type") != kind:
        raise Unauthorized(f"clientDataJSON is not a {kind}", fix="Use the page's own button.")
    if not hmac.compare_digest(str(data.get("challenge", "")), b64url(challenge)):
        raise Unauthorized("the passkey signed another challenge", fix="Start again from the page.")
    if data.get("origin") != origin:
        raise Unauthorized(f"the passkey was used on another site ({data.get('origin')!r})",
                           fix=f"Open {origin}/field/ itself.")


def _auth_data(raw: bytes, rp_id: str) -> tuple[int, int]:
    if len(raw) < 37:
        raise Unauthorized("authenticator data is too short", fix="Send what the browser returned.")
    if not hmac.compare_digest(raw[:32], hashlib.sha256(rp_id.encode("utf-8")).digest()):
        raise Unauthorized("the passkey belongs to another relying party", fix=f"Pair the phone at {rp_id}.")
    flags = raw[32]
    if not flags & FLAG_UP or not flags & FLAG_UV:
        raise Unauthorized("the phone did not verify its user (biometric or screen lock)",
                           fix="Turn on the phone's screen lock and confirm with it.")
    return flags, struct.unpack(">I", raw[33:37])[0]


@dataclass(frozen=True)
class NewCredential:
    credential_id: str  # base64url
    public_key_pem: str
    sign_count: int


def verify_registration(client_data_json: bytes, attestation_object: bytes, challenge: bytes,
                        origin: str) -> NewCredential:
    """A passkey made for this pairing: checks clientDataJSON (type, challenge, origin), the rpIdHash, UP and
    UV, and reads the ES256 public key from the attested credential data."""
    _client_data(client_data_json, "webauthn.create", challenge, origin)
    try:
        attestation, _ = cbor_first(attestation_object)
        auth = attestation["authData"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("the attestation object is not valid CBOR", fix="Send what the browser returned.") from None
    flags, count = _auth_data(auth, rp_id_of(origin))
    if not flags & FLAG_AT or len(auth) < 55:
        raise InvalidInput("the passkey came without its public key", fix="Use a platform passkey.")
    id_len = struct.unpack(">H", auth[53:55])[0]
    credential_id = auth[55:55 + id_len]
    try:
        cose, _ = cbor_first(auth[55 + id_len:])
        if cose.get(3) != COSE_ES256 or cose.get(1) != 2 or cose.get(-1) != 1:
            raise ValueError("not ES256")
        key = ec.EllipticCurvePublicNumbers(int.from_bytes(cose[-2], "big"), int.from_bytes(cose[-3], "big"),
                                            ec.SECP256R1()).public_key()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidInput("the passkey's public key is not ES256 (P-256)",
                           fix="Use the phone's platform authenticator.") from None
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return NewCredential(b64url(credential_id), pem, count)


def verify_assertion(public_key_pem: str, stored_count: int, client_data_json: bytes, authenticator_data: bytes,
                     signature: bytes, challenge: bytes, origin: str) -> int:
    """A passkey's signature over ``challenge``; returns the new signature counter. A counter that did not
    grow (when the authenticator keeps one) means a cloned key: refused."""
    _client_data(client_data_json, "webauthn.get", challenge, origin)
    _, count = _auth_data(authenticator_data, rp_id_of(origin))
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Unauthorized("this phone's key is not ES256", fix="Pair the phone again.")
    try:
        key.verify(signature, authenticator_data + hashlib.sha256(client_data_json).digest(),
                   ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Unauthorized("the passkey's signature does not verify", fix="Punch from the paired phone.") from None
    if (count or stored_count) and count <= stored_count:
        raise Unauthorized("the passkey's counter went backwards: it may have been copied",
                           fix="Ask HR to revoke this phone and pair it again.")
    return count
