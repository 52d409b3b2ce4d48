"""Where the database key comes from: systemd credential, 0600 key file, or the environment."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from kiosk.base.errors import KeyMaterialError

log = logging.getLogger(__name__)

KEY_BYTES = 32
CREDENTIAL_NAME = "kiosk-db-key"
KEY_ENV = "KIOSK_DB_KEY"


@dataclass(frozen=True)
class DbKey:
    """A raw 256-bit SQLCipher key and where it came from (never the key in logs)."""

    raw: bytes
    source: str

    def __repr__(self) -> str:
        return f"DbKey(source={self.source!r})"

    @property
    def pragma_literal(self) -> str:
        """The blob literal for ``PRAGMA key``: a raw key, so no per-open key derivation."""
        return f"\"x'{self.raw.hex()}'\""


def parse_key(text: str | bytes, source: str) -> DbKey:
    """Accept 64 hex digits (whitespace ignored) or exactly 32 raw bytes."""
    if isinstance(text, bytes):
        if len(text) == KEY_BYTES and not _looks_hex(text):
            return DbKey(text, source)
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise KeyMaterialError(f"the key in {source} is neither 64 hex digits nor 32 raw bytes",
                                   fix="Create a new key with `kiosk db keygen --out PATH`.") from None
    cleaned = "".join(text.split())
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise KeyMaterialError(f"the key in {source} is not 64 hex digits (a 256-bit key)",
                               fix="Create a new key with `kiosk db keygen --out PATH`.")
    return DbKey(raw, source)


def _looks_hex(data: bytes) -> bool:
    return all(chr(b) in "0123456789abcdefABCDEF \n\r\t" for b in data)


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that group or others can read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o})",
            fix=f"Run `chmod 600 {path}` (and `chown` it to the kiosk user), then start again.")


def read_key_file(path: Path, check_mode: bool = True) -> DbKey:
    """Read a key file, checking it is private first."""
    if path.is_dir():
        raise KeyMaterialError(f"key file {path} is a folder, not a key file",
                               fix="Point store.key_file at the key file itself, or create one with "
                               "`kiosk db keygen --out PATH`.")
    try:
        if check_mode:
            check_key_file_mode(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyMaterialError(f"key file {path} does not exist",
                               fix="Point store.key_file at the right file, or create one with "
                               "`kiosk db keygen --out PATH`.") from None
    except PermissionError:
        raise KeyMaterialError(f"key file {path} is not readable by this user",
                               fix="Run as the kiosk user, or use a systemd credential.") from None
    return parse_key(data, str(path))


def resolve_key(key_file: Path | None) -> DbKey:
    """Find the database key: systemd credential, then the configured key file, then $KIOSK_DB_KEY."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / CREDENTIAL_NAME
        if cred.exists():
            # systemd already restricts credentials to the service; no mode check needed.
            return read_key_file(cred, check_mode=False)
    if key_file is not None:
        return read_key_file(key_file)
    env = os.environ.get(KEY_ENV)
    if env:
        return parse_key(env, f"${KEY_ENV}")
    raise KeyMaterialError(
        "no database key found",
        fix=f"Provide the systemd credential '{CREDENTIAL_NAME}', set store.key_file to a 0600 key file "
        f"(make one with `kiosk db keygen --out PATH`), or set {KEY_ENV} (64 hex digits) for development.")


def write_key_file(path: Path) -> DbKey:
    """Create a new random key file with mode 0600; never overwrites an existing file."""
    key = DbKey(secrets.token_bytes(KEY_BYTES), str(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyMaterialError(f"{path} already exists; refusing to overwrite a key",
                               fix="Choose another path, or move the old key away first "
                               "(without it the database cannot be read).") from None
    except OSError as exc:
        raise KeyMaterialError(f"cannot create key file {path}: {exc.strerror}",
                               fix="Check that the folder exists and is writable.") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.raw.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key
