"""IN (上班) or OUT (下班): the direction a punch gets, by the rule in [punch] direction."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kiosk.base.timeutil import iso_utc, parse_hhmm, work_day_start

if TYPE_CHECKING:
    from kiosk.punching.config import DirectionWindow, PunchConfig
    from kiosk.store.database import Store


def in_window(window: DirectionWindow, moment: time) -> bool:
    start, end = parse_hhmm(window.start), parse_hhmm(window.end)
    moment = moment.replace(second=0, microsecond=0)
    return start <= moment <= end if start <= end else moment >= start or moment <= end


def direction_for(cfg: PunchConfig, tz: ZoneInfo, store: Store, employee_id: str, moment: datetime) -> str:
    """The direction of a punch by ``employee_id`` at ``moment`` (UTC): IN, OUT or "" (none); for
    ``buttons`` the one pre-selected on the screen, by the ``auto`` rule."""
    if cfg.direction == "none":
        return ""
    local = moment.astimezone(tz)
    if cfg.direction == "windows":
        return next((w.direction for w in cfg.direction_windows if in_window(w, local.time())), "")
    since = work_day_start(local, cfg.day_starts_at)
    last = store.punches.latest_with_direction(employee_id, iso_utc(since), iso_utc(moment))
    return "OUT" if last is not None and last.direction == "IN" else "IN"
