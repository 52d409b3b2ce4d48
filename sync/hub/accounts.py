"""Console accounts: users with a role (and branches for managers), scrypt passwords, lockout, sessions
kept in the database (so any worker serves any request), and the Principal every HR call acts as."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kiosk.base.errors import Conflict, InvalidInput, NotFound
from kiosk.base.secrethash import hash_secret, verify_secret
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from sync.errors import AccountLocked, Forbidden, Unauthorized
from sync.hub import audit
from sync.hub.branches import check_branch
from sync.hub.db.base import HubDb
from sync.hub.devices import token_hash

log = logging.getLogger(__name__)

ROLES = ("hr_admin", "branch_manager", "ops")
# What each role may do; reading devices and the Today page is open to every signed-in role.
PERMISSIONS: dict[str, frozenset[str]] = {
    "hr_admin": frozenset({"devices.manage", "employees.read", "employees.write", "punches.read",
                           "corrections.write", "export", "branches.manage", "outbound.manage"}),
    "branch_manager": frozenset({"employees.read", "punches.read", "corrections.write", "export"}),
    "ops": frozenset({"devices.manage", "punches.read", "outbound.manage"}),
}
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
PASSWORD_MIN_CHARS = 10
PASSWORD_MAX_CHARS = 200
SESSION_TOUCH_S = 30  # last_seen is written at most this often per session
# A hash of a random secret: unknown usernames cost one scrypt too, so timing does not reveal who exists.
_DUMMY_HASH = hash_secret(secrets.token_hex(16))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a console user or an HR API token, with the role's permissions and branch scope."""

    name: str
    role: str
    branches: tuple[str, ...] | None = None  # None: every branch
    csrf: str = ""
    via: str = "token"

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise Forbidden(f"role {self.role} may not do this ({permission})",
                            fix="Ask an HR admin to do it, or to give you a role that may.")

    def sees(self, branch: str) -> bool:
        return self.branches is None or branch in self.branches

    def scope(self, asked: str | None = None) -> list[str] | None:
        """Branches a query covers: ``asked`` if this principal may see it, else its own (None: all)."""
        if asked:
            if not self.sees(asked):
                raise Forbidden(f"you may not see branch {asked}", fix="Choose one of your branches: "
                                f"{', '.join(self.branches or ())}.")
            return [asked]
        return None if self.branches is None else list(self.branches)

    def require_branches(self, branches: list[str]) -> None:
        outside = [b for b in branches if not self.sees(b)]
        if outside:
            raise Forbidden(f"you may not act on branch {', '.join(outside)}",
                            fix="Choose one of your branches, or ask HR.")


def _check_password(password: str) -> str:
    if not PASSWORD_MIN_CHARS <= len(password or "") <= PASSWORD_MAX_CHARS or any(ord(c) < 32 for c in password):
        raise InvalidInput(f"a password must be {PASSWORD_MIN_CHARS}-{PASSWORD_MAX_CHARS} printable characters",
                           fix="Choose a longer password (a passphrase of a few words is easy to type).")
    return password


def _check_user(username: str, role: str, branches: list[str]) -> None:
    if not re.match(USERNAME, username or ""):
        raise InvalidInput(f"user name {username!r} is not valid", fix="Use 1-64 letters, digits, _ . @ -")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", fix=f"Use one of: {', '.join(ROLES)}.")
    for branch in branches:
        check_branch(branch)
    if role == "branch_manager" and not branches:
        raise InvalidInput("a branch manager needs at least one branch", fix="Pass --branch CODE (repeatable).")


def add_user(db: HubDb, username: str, role: str, password: str, branches: list[str], actor: str) -> dict[str, Any]:
    """A new console account; only the scrypt hash of the password is stored."""
    _check_user(username, role, branches)
    hashed = hash_secret(_check_password(password))
    with db.transaction() as tx:
        if tx.row("SELECT 1 AS x FROM hub_users WHERE username = ?", [username]):
            raise Conflict(f"user {username} already exists", fix="Choose another name, or set their password "
                           "with `kiosk hub user password`.")
        tx.run("INSERT INTO hub_users (username, role, branches, password_hash, created_utc) VALUES (?, ?, ?, ?, ?)",
               [username, role, ",".join(sorted(set(branches))), hashed, iso_utc(utc_now())])
        audit.record(tx, actor, "user.add", username, role=role, branches=sorted(set(branches)))
    return {"username": username, "role": role, "branches": sorted(set(branches))}


def set_password(db: HubDb, username: str, password: str, actor: str) -> None:
    """A new password; clears a lockout and ends the user's sessions."""
    hashed = hash_secret(_check_password(password))
    with db.transaction() as tx:
        if not tx.run("UPDATE hub_users SET password_hash = ?, failures = 0, locked_until_utc = NULL "
                      "WHERE username = ?", [hashed, username]):
            raise NotFound(f"no user {username}", fix="List users with `kiosk hub user list`.")
        tx.run("DELETE FROM hub_sessions WHERE username = ?", [username])
        audit.record(tx, actor, "user.password", username)


def disable_user(db: HubDb, username: str, actor: str) -> None:
    """The account can no longer sign in; its sessions end at once."""
    with db.transaction() as tx:
        if not tx.run("UPDATE hub_users SET disabled_utc = ? WHERE username = ? AND disabled_utc IS NULL",
                      [iso_utc(utc_now()), username]):
            raise NotFound(f"no active user {username}", fix="List users with `kiosk hub user list`.")
        tx.run("DELETE FROM hub_sessions WHERE username = ?", [username])
        audit.record(tx, actor, "user.disable", username)


def list_users(db: HubDb) -> list[dict[str, Any]]:
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT username, role, branches, created_utc, disabled_utc, locked_until_utc, "
                       "last_login_utc FROM hub_users ORDER BY username")
    for row in rows:
        row["branches"] = [b for b in row["branches"].split(",") if b]
    return rows


def _principal(row: dict[str, Any], csrf: str = "", via: str = "session") -> Principal:
    branches = tuple(b for b in row["branches"].split(",") if b)
    scoped = row["role"] == "branch_manager"
    return Principal(row["username"], row["role"], branches if scoped else None, csrf, via)


def sign_in(db: HubDb, username: str, password: str, max_failures: int, lockout_s: float) -> tuple[str, Principal]:
    """Check a password; returns a new session token and who signed in. Wrong passwords count towards a
    lockout of ``lockout_s``; a locked account is refused without checking the password."""
    now = utc_now()
    with db.transaction() as tx:
        row = tx.row("SELECT * FROM hub_users WHERE username = ?" + tx.for_update, [username or ""])
        if row is None or row["disabled_utc"] is not None:
            verify_secret(password or "", _DUMMY_HASH)
            raise Unauthorized("wrong user name or password", fix="Check both and try again.")
        if row["locked_until_utc"] and parse_iso(row["locked_until_utc"]) > now:
            left = int((parse_iso(row["locked_until_utc"]) - now).total_seconds()) + 1
            raise AccountLocked(f"this account is locked for {left} s after too many wrong passwords",
                                fix="Wait, or ask an HR admin to set a new password.", retry_after_s=left)
        if not verify_secret(password or "", row["password_hash"]):
            locked = _failed(tx, row, max_failures, lockout_s)
        else:
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
            tx.run("UPDATE hub_users SET failures = 0, locked_until_utc = NULL, last_login_utc = ? WHERE username = ?",
                   [iso_utc(now), username])
            tx.run("INSERT INTO hub_sessions (token_hash, username, csrf, created_utc, last_seen_utc) "
                   "VALUES (?, ?, ?, ?, ?)", [token_hash(token), username, csrf, iso_utc(now), iso_utc(now)])
            audit.record(tx, username, "user.sign_in", username)
            return token, _principal(row, csrf)
    if locked:
        raise AccountLocked(f"wrong password; this account is now locked for {int(lockout_s)} s",
                            fix="Wait, or ask an HR admin to set a new password.", retry_after_s=int(lockout_s))
    raise Unauthorized("wrong user name or password", fix="Check both and try again.")


def _failed(tx: Any, row: dict[str, Any], max_failures: int, lockout_s: float) -> bool:
    """Count a wrong password; True when it locked the account."""
    failures = row["failures"] + 1
    if failures < max_failures:
        tx.run("UPDATE hub_users SET failures = ? WHERE username = ?", [failures, row["username"]])
        audit.record(tx, row["username"], "user.sign_in_failed", row["username"], failures=failures)
        return False
    until = iso_utc(utc_now() + timedelta(seconds=lockout_s))
    tx.run("UPDATE hub_users SET failures = 0, locked_until_utc = ? WHERE username = ?", [until, row["username"]])
    audit.record(tx, row["username"], "user.locked", row["username"], seconds=int(lockout_s))
    log.warning("console account %s locked for %.0f s after %d wrong passwords", row["username"], lockout_s,
                max_failures)
    return True


def session_principal(db: HubDb, token: str, idle_min: float) -> Principal | None:
    """Who holds this session cookie, or None when it is unknown, idle too long or its user was disabled."""
    if not token:
        return None
    now = utc_now()
    key = token_hash(token)
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT s.csrf, s.last_seen_utc, u.* FROM hub_sessions s JOIN hub_users u "
                     "ON u.username = s.username WHERE s.token_hash = ?", [key])
    if row is None or row["disabled_utc"] is not None:
        return None
    idle_s = (now - parse_iso(row["last_seen_utc"])).total_seconds()
    if idle_s > idle_min * 60:
        end_session(db, token, reason="idle")
        return None
    if idle_s > SESSION_TOUCH_S:
        with db.transaction() as tx:
            tx.run("UPDATE hub_sessions SET last_seen_utc = ? WHERE token_hash = ?", [iso_utc(now), key])
    return _principal(row, row["csrf"])


def end_session(db: HubDb, token: str, reason: str = "sign_out") -> None:
    with db.transaction() as tx:
        row = tx.row("SELECT username FROM hub_sessions WHERE token_hash = ?", [token_hash(token)])
        if row is not None:
            tx.run("DELETE FROM hub_sessions WHERE token_hash = ?", [token_hash(token)])
            audit.record(tx, row["username"], "user.sign_out", row["username"], reason=reason)


def csrf_ok(principal: Principal, sent: str | None) -> bool:
    """A token-authenticated caller needs none; a session must echo its own CSRF token."""
    if principal.via != "session":
        return True
    return bool(sent) and hmac.compare_digest(sent, principal.csrf)


def token_principal(db: HubDb, token: str) -> Principal:
    """An HR API bearer token (role hr: everything an HR admin may do, every branch)."""
    with db.transaction(write=False) as tx:
        row = tx.row("SELECT id, role, revoked_utc FROM api_tokens WHERE token_hash = ?", [token_hash(token)])
    if row is None or row["revoked_utc"] is not None:
        raise Unauthorized("unknown or revoked API token", fix="Ask the hub operator for a token "
                           "(`kiosk hub token create --role hr`), or sign in to the console.")
    if row["role"] != "hr":
        raise Forbidden(f"role {row['role']} may not use the HR API")
    return Principal(f"token:{row['id']}", "hr_admin", None, "", "token")
