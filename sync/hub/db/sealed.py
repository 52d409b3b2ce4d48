"""The hub key: seals secrets the hub must read back (webhook signing secrets) before they reach its database.

AES-256-GCM with a random 96-bit nonce per value; the associated data names the table, column and row,
so a sealed value copied to another row does not open. The key is 32 random bytes, 64 hex digits in a
0600 file beside the hub's config (``database.secrets_key_file``, made on first use) or the systemd
credential ``kiosk-hub-secrets-key``. Every worker of one hub needs the same key; the database alone
(a dump, a backup, a replica) no longer holds the secrets.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
import threading
from pathlib import Path

from kiosk.base.errors import ConfigError

log = logging.getLogger(__name__)

SECRETS_KEY_CREDENTIAL = "kiosk-hub-secrets-key"
SEALED_PREFIX = "sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBox:
    """Seals and opens short secrets with the hub key, read (or made) on first use."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_database(cls, database) -> SecretBox:  # noqa: ANN001 - DatabaseConfig
        return cls(database.secrets_key_file)

    def seal(self, plain: str, label: str) -> str:
        """``plain`` sealed for the place named by ``label`` (e.g. 'outbound_subscriptions.secrets:wh_1')."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._the_key()).encrypt(nonce, plain.encode("utf-8"), label.encode("utf-8"))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, value: str, label: str) -> str:
        """The plain text of a value made by ``seal`` with the same label."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        if not is_sealed(value):
            raise ConfigError(f"{label} is not sealed in the hub database",
                              fix="Run `kiosk hub migrate` with every hub worker stopped (it seals old rows).")
        try:
            raw = base64.b64decode(value[len(SEALED_PREFIX):], validate=True)
            return AESGCM(self._the_key()).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                                   label.encode("utf-8")).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            raise ConfigError(f"the hub key {self.key_file} does not open {label}",
                              fix="Use the key file this hub's secrets were sealed with (every hub worker "
                              f"needs the same {self.key_file.name}, or the credential "
                              f"{SECRETS_KEY_CREDENTIAL}); without it, remove and add the webhook again.") from None

    def _the_key(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = load_or_create_key(self.key_file)
            return self._key


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def load_or_create_key(key_file: Path) -> bytes:
    """The systemd credential, else the key file (made 0600 when it does not exist yet)."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / SECRETS_KEY_CREDENTIAL).exists():
        return _parse((Path(cred_dir) / SECRETS_KEY_CREDENTIAL).read_text(encoding="ascii"),
                      f"credential {SECRETS_KEY_CREDENTIAL}")
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(key_file)
    except OSError as exc:
        raise ConfigError(f"cannot create the hub key {key_file}: {exc.strerror}",
                          fix="Make the folder writable by the hub user, or set database.secrets_key_file.") from None
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("hub key created in %s: back it up with the database; every hub worker needs the same file",
                key_file)
    return key


def _read(key_file: Path) -> bytes:
    mode = key_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"hub key {key_file} is accessible by group or others (mode {stat.S_IMODE(mode):04o})",
                          fix=f"Run `chmod 600 {key_file}` (owned by the hub user), then start again.")
    try:
        text = key_file.read_text(encoding="ascii")
    except (PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the hub key {key_file} ({type(exc).__name__})",
                          fix="Run the hub as the user owning the key file.") from None
    return _parse(text, str(key_file))


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{where} does not hold a hub key (64 hex digits)",
                          fix="Restore the hub's key file from its backup.")
    return key
