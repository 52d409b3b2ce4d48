"""Device signatures on punches: Ed25519 over the record's hash (kiosk.base.record.punch_hash).

The kiosk signs each punch's hash with its own key (kept in its encrypted store); the hub and
`kiosk hub verify-export` check it against the public key the kiosk sent at registration. The
signature is not part of the hashed record: it signs the hash, so nothing else gets a canonical form.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

SIGNED_PREFIX = b"branch-kiosk punch v1:"
"""What is signed: this prefix, then the punch's hash as its 64 lower-case hex digits (ASCII). The prefix
keeps a punch signature from meaning anything else, should the key ever sign other things."""
PUBLIC_KEY_PATTERN = r"^[0-9a-f]{64}$"
SIGNATURE_PATTERN = r"^([0-9a-f]{128})?$"
KEY_ID_CHARS = 16


def new_private_key() -> bytes:
    """A fresh Ed25519 private key, as its 32 raw bytes."""
    return Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def public_key(private_raw: bytes) -> str:
    """The public key of a raw private key: 64 hex digits."""
    return Ed25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw).hex()


def key_id(public_hex: str) -> str:
    """A short name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:KEY_ID_CHARS]


def sign_hash(private_raw: bytes, hash_hex: str) -> str:
    """The signature (128 hex digits) of one punch hash."""
    return Ed25519PrivateKey.from_private_bytes(private_raw).sign(SIGNED_PREFIX + hash_hex.encode("ascii")).hex()


def signature_valid(public_hex: str, hash_hex: str, signature_hex: str) -> bool:
    """True when ``signature_hex`` is the key's signature of ``hash_hex``; anything malformed is False."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        key.verify(bytes.fromhex(signature_hex), SIGNED_PREFIX + hash_hex.encode("ascii"))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return False
    return True
