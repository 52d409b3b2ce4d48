"""The hub database: one interface (base.py), one module per backend, the schema and its migrations.

A backend is a HubDb subclass with a ``from_config(database)`` constructor, named in BACKENDS below;
adding one means adding its module here and its name to DatabaseConfig.backend. Backends load
on demand, so a SQLite hub never imports psycopg.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

from sync.hub.db.base import HubDb
from sync.hub.db.sealed import SecretBox

BACKENDS = {
    "sqlite": "sync.hub.db.sqlite:SqliteHubDb",
    "postgres": "sync.hub.db.postgres:PostgresHubDb",
}


def backend_class(name: str) -> type[HubDb]:
    """The HubDb subclass registered under ``name``."""
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def open_hub_db(database, migrate: bool = False) -> HubDb:  # noqa: ANN001 - DatabaseConfig
    """The backend named by a DatabaseConfig, optionally migrated."""
    db = backend_class(database.backend).from_config(database)
    db.box = SecretBox.for_database(database)
    if migrate:
        try:
            db.migrate()
        except BaseException:
            db.close()
            raise
    return db


@contextlib.contextmanager
def hub_db(database, migrate: bool = False) -> Iterator[HubDb]:  # noqa: ANN001 - DatabaseConfig
    """An open hub database for the length of a ``with`` block."""
    db = open_hub_db(database, migrate=migrate)
    try:
        yield db
    finally:
        db.close()
