"""The encrypted store: the only code that writes SQL against the kiosk's own tables."""

from kiosk.store.database import Store, open_store

__all__ = ["Store", "open_store"]
