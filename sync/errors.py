"""Typed errors of the sync agent and the hub (subclasses of kiosk.base.errors.KioskError)."""

from __future__ import annotations

from kiosk.base.errors import KioskError


class HubUnreachable(KioskError):
    """The hub could not be reached or failed (timeout, refused, cut connection, 5xx): retry later."""

    def __init__(self, what: str, fix: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(what, fix or "The agent retries with backoff; punches stay on the kiosk meanwhile. "
                         "Check the network and that the hub is running.")
        self.retry_after_s = retry_after_s


class HubRefused(KioskError):
    """The hub answered 4xx: this request will not succeed if repeated unchanged."""

    def __init__(self, what: str, fix: str = "", status: int = 400, code: str = "") -> None:
        super().__init__(what, fix)
        self.status = status
        self.code = code


class DeviceNotAuthorized(HubRefused):
    """The hub does not accept this kiosk's token (revoked, or the device was removed)."""


class Unauthorized(KioskError):
    """Hub side: missing, unknown or revoked bearer token."""


class Forbidden(KioskError):
    """Hub side: the token is valid but its role may not do this."""


class PayloadTooLarge(KioskError):
    """Hub side: the request body or batch is over the configured limit."""


class HubBusy(KioskError):
    """Hub side: the database is locked or unreachable for a moment; the client should retry."""


class AccountLocked(KioskError):
    """Hub side: too many wrong passwords; the account is locked for ``retry_after_s`` seconds."""

    def __init__(self, what: str, fix: str = "", retry_after_s: int = 0) -> None:
        super().__init__(what, fix)
        self.retry_after_s = retry_after_s


class TooManyRequests(KioskError):
    """Hub side: this caller asked too often (a field phone's punch attempts); retry after ``retry_after_s``."""

    def __init__(self, what: str, fix: str = "", retry_after_s: int = 60) -> None:
        super().__init__(what, fix)
        self.retry_after_s = retry_after_s


class NeedsConfirmation(KioskError):
    """Hub side: the request is allowed but looks like a mistake; repeat it with confirm=true."""
