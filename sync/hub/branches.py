"""Branches at the hub: each one's time zone (for local dates and times) and display name."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.base.errors import InvalidInput
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from sync.hub import audit
from sync.hub.db.base import HubDb, Tx
from sync.protocol import BRANCH

log = logging.getLogger(__name__)

TZ_PROBLEM = "unknown time zone; use an IANA name such as Asia/Shanghai or UTC"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or InvalidInput."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"time zone {name!r}: {TZ_PROBLEM}", fix="Use an IANA name such as Asia/Shanghai.") from None


def check_branch(code: str) -> str:
    if not isinstance(code, str) or not re.match(BRANCH, code):
        raise InvalidInput(f"branch {code!r} is not valid", fix="Use 1-32 letters, digits, _ . -")
    return code


@dataclass(frozen=True)
class Zones:
    """Branch code -> time zone, with the hub's default for branches without one."""

    by_branch: dict[str, ZoneInfo]
    default: ZoneInfo

    def of(self, branch: str) -> ZoneInfo:
        return self.by_branch.get(branch, self.default)

    def local(self, ts_utc: str, branch: str) -> datetime:
        """A canonical UTC timestamp as local time in ``branch``'s zone."""
        return parse_iso(ts_utc).astimezone(self.of(branch))


def zones(tx: Tx, default_tz: str) -> Zones:
    rows = tx.rows("SELECT code, timezone FROM branches")
    return Zones({r["code"]: ZoneInfo(r["timezone"]) for r in rows}, ZoneInfo(default_tz))


def load_zones(db: HubDb, default_tz: str) -> Zones:
    with db.transaction(write=False) as tx:
        return zones(tx, default_tz)


def set_branch(db: HubDb, code: str, timezone: str, name: str | None, actor: str) -> dict[str, str]:
    """Create or change a branch's time zone (and name); audited."""
    check_branch(code)
    zone(timezone)
    now = iso_utc(utc_now())
    with db.transaction() as tx:
        old = tx.row("SELECT name FROM branches WHERE code = ?", [code])
        keep = name if name is not None else (old["name"] if old else "")
        tx.run("INSERT INTO branches (code, name, timezone, updated_utc) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (code) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, "
               "updated_utc = excluded.updated_utc", [code, keep.strip(), timezone, now])
        audit.record(tx, actor, "branch.set", code, timezone=timezone)
    return {"code": code, "name": keep.strip(), "timezone": timezone}


def list_branches(db: HubDb, default_tz: str) -> list[dict[str, str]]:
    """Every branch the hub knows of (configured, with kiosks, or with employees) and its time zone."""
    with db.transaction(write=False) as tx:
        known = {r["code"]: r for r in tx.rows("SELECT code, name, timezone FROM branches")}
        seen = {r["branch"] for r in tx.rows("SELECT DISTINCT branch FROM devices UNION "
                                             "SELECT DISTINCT branch FROM employee_branches WHERE active = 1")}
    out = []
    for code in sorted(set(known) | seen):
        row = known.get(code)
        out.append({"code": code, "name": row["name"] if row else "", "timezone": row["timezone"] if row
                    else default_tz, "configured": row is not None})
    return out
