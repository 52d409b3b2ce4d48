"""Admin mode's PIN: scrypt-hashed in the encrypted store, lockout after repeated failures, one session
that logs out by itself when idle. Every login, failure, lockout and logout goes to the audit log."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from kiosk.base.errors import InvalidInput
from kiosk.base.secrethash import hash_secret, verify_secret
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now

log = logging.getLogger(__name__)

PIN_META_KEY = "admin_pin"
LOCK_META_KEY = "admin_lockout"
ACTOR = "kiosk-admin"
PIN_MIN_CHARS = 6
PIN_MAX_CHARS = 64


def check_pin_rules(pin: str) -> str:
    """The PIN as given, or InvalidInput saying what a PIN must be."""
    if pin and any("\ud800" <= c <= "\udfff" for c in pin):  # undecodable bytes read from stdin
        raise InvalidInput("the admin PIN is not valid UTF-8 text",
                           fix="Give the PIN as plain text (digits are easiest on the touchscreen).")
    if not PIN_MIN_CHARS <= len(pin or "") <= PIN_MAX_CHARS or any(ord(c) < 32 for c in pin):
        raise InvalidInput(f"the admin PIN must be {PIN_MIN_CHARS}-{PIN_MAX_CHARS} printable characters",
                           fix="Choose a longer PIN or password (digits are easiest on the touchscreen).")
    return pin


def hash_pin(pin: str) -> str:
    """'scrypt$N$r$p$salt$hash' (hex) of a PIN with a fresh random salt."""
    return hash_secret(pin)


def verify_pin(pin: str, stored: str) -> bool:
    """Whether ``pin`` matches a hash made by hash_pin (constant-time comparison)."""
    return verify_secret(pin, stored)


def set_pin(store, pin: str, actor: str = "admin") -> None:  # noqa: ANN001 - Store
    """Store a new admin PIN hash (and clear any lockout)."""
    hashed = hash_pin(check_pin_rules(pin))
    with store.atomic("setting the admin PIN"):
        store.set_meta(PIN_META_KEY, hashed)
        store.set_meta(LOCK_META_KEY, json.dumps({"failures": 0, "until_utc": None}))
        store.audit(actor, "admin.set_pin")


def pin_is_set(store) -> bool:  # noqa: ANN001 - Store
    return bool(store.get_meta(PIN_META_KEY))


@dataclass(frozen=True)
class LoginResult:
    """``code``: ok, wrong_pin, locked or no_pin; ``remaining`` tries before a lockout."""

    code: str
    token: str | None = None
    remaining: int = 0
    retry_after_s: int = 0

    def to_dict(self) -> dict:
        return {"result": self.code, "remaining": self.remaining, "retry_after_s": self.retry_after_s}

    @property
    def ok(self) -> bool:
        return self.code == "ok"


class AdminAuth:
    """PIN checks, the lockout and the one admin session (thread-safe)."""

    def __init__(self, store, max_failures: int, lockout_s: float, idle_logout_s: float,  # noqa: ANN001
                 clock: Callable[[], float] = time.monotonic, on_end: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_end = on_end
        self.max_failures, self.lockout_s, self.idle_logout_s = max_failures, lockout_s, idle_logout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._last_seen = 0.0
        self.failures, self._locked_until = self._restore_lockout()

    def _restore_lockout(self) -> tuple[int, float]:
        """A lockout survives a restart of the kiosk (never longer than lockout_s from now)."""
        saved = json.loads(self.store.get_meta(LOCK_META_KEY) or "{}")
        failures = int(saved.get("failures", 0))
        until = saved.get("until_utc")
        if not until:
            return failures, 0.0
        left_s = min(self.lockout_s, (parse_iso(until) - utc_now()).total_seconds())
        return (failures, self._clock() + left_s) if left_s > 0 else (0, 0.0)

    def _save_lockout(self, until_utc: str | None) -> None:
        self.store.set_meta(LOCK_META_KEY, json.dumps({"failures": self.failures, "until_utc": until_utc}))

    def locked_for_s(self) -> int:
        return max(0, int(round(self._locked_until - self._clock())))

    def login(self, pin: str) -> LoginResult:
        with self._lock:
            stored = self.store.get_meta(PIN_META_KEY)
            if not stored:
                return LoginResult("no_pin")
            if self.locked_for_s() > 0:
                return LoginResult("locked", retry_after_s=self.locked_for_s())
            if not verify_pin(pin or "", stored):
                return self._failed()
            self.failures = 0
            self._save_lockout(None)
            self._token, self._last_seen = secrets.token_urlsafe(32), self._clock()
            self.store.audit(ACTOR, "admin.login")
            return LoginResult("ok", token=self._token)

    def _failed(self) -> LoginResult:
        self.failures += 1
        self.store.audit(ACTOR, "admin.login_failed", failures=self.failures)
        if self.failures < self.max_failures:
            self._save_lockout(None)
            return LoginResult("wrong_pin", remaining=self.max_failures - self.failures)
        self.failures = 0
        self._locked_until = self._clock() + self.lockout_s
        self._save_lockout(iso_utc(utc_now() + timedelta(seconds=self.lockout_s)))
        self.store.audit(ACTOR, "admin.lockout", seconds=int(self.lockout_s))
        log.warning("admin mode locked for %.0f s after %d wrong PINs", self.lockout_s, self.max_failures)
        return LoginResult("locked", retry_after_s=self.locked_for_s())

    def check(self, token: str | None, touch: bool = True) -> bool:
        """Whether ``token`` is the live session; an idle session is logged out here."""
        with self._lock:
            if self._token is None or not token or not hmac.compare_digest(token, self._token):
                return False
            if self._clock() - self._last_seen > self.idle_logout_s:
                self._end("idle")
                return False
            if touch:
                self._last_seen = self._clock()
            return True

    def expire_idle(self) -> bool:
        """Log out an idle session even when nobody calls (returns True when it did)."""
        with self._lock:
            if self._token is not None and self._clock() - self._last_seen > self.idle_logout_s:
                self._end("idle")
                return True
            return False

    def logout(self, token: str | None) -> None:
        with self._lock:
            if self._token is not None and token and hmac.compare_digest(token, self._token):
                self._end("manual")

    def _end(self, reason: str) -> None:
        self._token = None
        self.store.audit(ACTOR, "admin.logout", reason=reason)
        if self.on_end is not None:
            self.on_end(reason)
