"""Refusals the screen shows: a reason code (``error.<code>`` in the catalogues) and its parameters."""

from __future__ import annotations

from kiosk.base.errors import Conflict, InvalidInput, KioskError, NotFound, StoreError


class UiError(Exception):
    """A request the UI refuses; ``code`` names the sentence, ``params`` fill it, ``status`` is HTTP."""

    def __init__(self, code: str, status: int = 400, **params: object) -> None:
        super().__init__(code)
        self.code, self.status, self.params = code, status, params

    def to_dict(self) -> dict:
        return {"error": self.code, "params": self.params}


def from_kiosk_error(exc: KioskError) -> UiError:
    """A core error as a UI refusal; the English sentence travels as ``detail`` for the admin."""
    for kind, code, status in ((InvalidInput, "invalid_input", 400), (Conflict, "conflict", 409),
                               (NotFound, "not_found", 404), (StoreError, "store_error", 500)):
        if isinstance(exc, kind):
            return UiError(code, status, detail=exc.what)
    return UiError("failed", 500, detail=exc.what)
