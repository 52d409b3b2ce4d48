"""Clock anchors: (boot id, monotonic ns, true UTC) stored once a source vouches for the time, so the hub
can correct the punches this kiosk stored while its clock was unverified (kiosk.time.correction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.store.database import Store


class ClockAnchors:
    """Anchors of one store, newest last."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, boot: str, mono_ns: int, true_utc: str, source: str, offset_s: float | None) -> None:
        """Tie boot ``boot``'s monotonic clock to the true time ``true_utc`` (canonical UTC text)."""
        with self.store.atomic("recording a clock anchor") as db:
            db.execute("INSERT INTO clock_anchors (boot_id, mono_ns, utc, source, offset_s) VALUES (?, ?, ?, ?, ?)",
                       [boot, mono_ns, true_utc, source, offset_s])

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """The newest anchors (boot_id, mono_ns, utc, source), newest first."""
        return self.store.query("SELECT boot_id, mono_ns, utc, source FROM clock_anchors ORDER BY id DESC LIMIT ?",
                                [limit])
