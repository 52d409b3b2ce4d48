"""Typed errors: core code raises these; only the CLI and UI turn them into sentences."""

from __future__ import annotations


class KioskError(Exception):
    """A failure a person can act on: what went wrong and what to do about it.

    ``exit_code`` is what the CLI exits with; 1 for a refused request, 2 is
    reserved for usage errors, 3 for a damaged or unreadable store.
    """

    exit_code = 1

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.what} {self.fix}".strip()


class ConfigError(KioskError):
    """The configuration file or an override is invalid; ``problems`` lists each one."""

    def __init__(self, what: str, problems: list[str] | None = None, fix: str = "") -> None:
        super().__init__(what, fix)
        self.problems = problems or []


class KeyMaterialError(KioskError):
    """The database key is missing, malformed, or stored unsafely."""


class StoreError(KioskError):
    """The store cannot be opened or written (wrong key, damaged file, full disk...)."""

    exit_code = 3


class NotFound(KioskError):
    """An employee, card or record that was asked for does not exist."""


class Conflict(KioskError):
    """The request clashes with what is stored (duplicate id, card in use...)."""


class InvalidInput(KioskError):
    """A value given by a person is malformed (empty name, bad card number...)."""


class ModelError(KioskError):
    """A model pack file is missing, unreadable, damaged, or not the kind of model expected."""


class ModelMismatch(KioskError):
    """Face templates were made by another recognition model than the one running."""


class NotRegistered(KioskError):
    """This kiosk has no hub registration yet."""


class NeedsConfirmation(KioskError):
    """The request is allowed, but looks like a mistake: repeat it confirmed to go ahead."""
