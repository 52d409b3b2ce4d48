"""The encrypted store: the only code that writes SQL against the kiosk's own tables."""

from __future__ import annotations

from typing import Any

__all__ = ["Store", "open_store"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - Store or open_store
    """Store and open_store load on first use: the full store pulls in the punch log, the roster and the
    signing keys' code, which kiosk.store.quickread's one read (`kiosk config check`) does without."""
    if name in __all__:
        from kiosk.store import database
        return getattr(database, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
