"""The encrypted store: the only code that writes SQL against the kiosk's own tables."""

from __future__ import annotations

from typing import Any

__all__ = ["Store", "open_store"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - Store or open_store
    """Store and open_store load on first use: the full store pulls in sqlite-utils (and with it numpy),
    which kiosk.store.connection's light reads (`kiosk config check`) do without."""
    if name in __all__:
        from kiosk.store import database
        return getattr(database, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
