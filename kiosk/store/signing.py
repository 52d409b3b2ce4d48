"""This kiosk's punch-signing keys (Ed25519), kept only inside the encrypted store.

The newest key that is not retired signs; a new registration with a hub retires it and adds a new
one (rotation), and retired keys stay listed so it is known which key signed what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiosk.base.errors import StoreError
from kiosk.base.timeutil import iso_utc, utc_now

if TYPE_CHECKING:
    from kiosk.store.database import Store


@dataclass(frozen=True)
class PublicKey:
    """A signing key as others see it: its id and public half."""

    key_id: str
    public_key: str
    created_utc: str
    retired_utc: str | None = None


def add_key(db: Any, private_raw: bytes | None = None) -> PublicKey:
    """Retire the current key and store a new one, inside the caller's transaction (``db``: a connection or
    the store's kiosk.store.sql.Database)."""
    from kiosk.base.signing import key_id, new_private_key, public_key  # cryptography: only to make a key

    raw = private_raw or new_private_key()
    public = public_key(raw)
    now = iso_utc(utc_now())
    db.execute("UPDATE signing_keys SET retired_utc = ? WHERE retired_utc IS NULL", [now])
    db.execute("INSERT INTO signing_keys (key_id, private_key, public_key, created_utc) VALUES (?, ?, ?, ?)",
               [key_id(public), raw, public, now])
    return PublicKey(key_id(public), public, now)


class SigningKeys:
    """The store's signing keys; the private halves never leave this class."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _current_row(self) -> dict[str, Any]:
        rows = self.store.query("SELECT key_id, private_key, public_key, created_utc FROM signing_keys "
                                "WHERE retired_utc IS NULL ORDER BY id DESC LIMIT 1")
        if not rows:
            raise StoreError("this store has no punch-signing key",
                             fix="Run `kiosk db migrate` (it creates one), or register the kiosk again.")
        return rows[0]

    def current(self) -> PublicKey:
        row = self._current_row()
        return PublicKey(row["key_id"], row["public_key"], row["created_utc"])

    def history(self) -> list[PublicKey]:
        """Every key this store has had, oldest first."""
        return [PublicKey(**row) for row in self.store.query(
            "SELECT key_id, public_key, created_utc, retired_utc FROM signing_keys ORDER BY id")]

    def sign_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records, each with ``signature``: the current key's signature of its ``hash``."""
        from kiosk.base.signing import sign_hash  # cryptography: only when punches are signed

        raw = self._current_row()["private_key"]
        return [{**rec, "signature": sign_hash(raw, rec["hash"])} for rec in records]
