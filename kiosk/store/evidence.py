"""Evidence thumbnails: a small encrypted JPEG of the face beside a face punch, erased after a retention period."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from kiosk.base.timeutil import iso_utc, utc_now

if TYPE_CHECKING:
    from kiosk.store.database import Store


class Evidence:
    """Thumbnails of one store, keyed by punch id."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, punch_id: str, jpeg: bytes) -> None:
        with self.store.atomic("storing the evidence thumbnail") as db:
            db.execute("INSERT OR REPLACE INTO evidence (punch_id, created_utc, jpeg) VALUES (?, ?, ?)",
                       [punch_id, iso_utc(utc_now()), jpeg])

    def purge(self, retention_days: int) -> int:
        """Erase thumbnails older than the retention period (secure_delete overwrites them); returns how many."""
        cutoff = iso_utc(utc_now() - timedelta(days=retention_days))
        with self.store.atomic("purging old evidence") as db:
            return db.execute("DELETE FROM evidence WHERE created_utc < ?", [cutoff]).rowcount
