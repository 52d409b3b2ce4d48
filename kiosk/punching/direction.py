"""IN (上班) or OUT (下班): the direction a punch gets, by the rule in [punch] direction."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kiosk.base.timeutil import iso_utc

if TYPE_CHECKING:
    from kiosk.punching.config import DirectionWindow, PunchConfig
    from kiosk.store.database import Store


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def work_day_start(local: datetime, day_starts_at: str) -> datetime:
    """The start of the work day ``local`` (a zone-aware local time) belongs to."""
    start = datetime.combine(local.date(), _hhmm(day_starts_at), tzinfo=local.tzinfo)
    return start if local >= start else start - timedelta(days=1)


def in_window(window: DirectionWindow, moment: time) -> bool:
    start, end = _hhmm(window.start), _hhmm(window.end)
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
