"""Time helpers: canonical UTC timestamps, monotonic clock, the kernel boot id, and the local work day."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from pathlib import Path

HUB_TIME_HEADER = "X-Hub-Time"
LOCAL_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
"""A local time of day as HH:MM (config keys such as ``day_starts_at``)."""
"""The hub stamps every answer with its UTC clock (milliseconds) in this header; kiosks measure
their clock offset from it."""
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
BOOT_ID_ENV = "KIOSK_BOOT_ID"


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """Canonical timestamp text: UTC, millisecond precision, 'Z' suffix (sorts as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; a value without zone is taken as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC in ns: never jumps when the wall clock is stepped."""
    return time.monotonic_ns()


def boot_id() -> str:
    """The kernel's random id of this boot (ties monotonic times to one boot)."""
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        pass
    # Under systemd's ProcSubset=pid /proc/sys is hidden: the units pass the same id as KIOSK_BOOT_ID=%b.
    try:
        return str(uuid.UUID(hex=os.environ.get(BOOT_ID_ENV, "")))
    except ValueError:
        # Not Linux: a per-process id still keeps monotonic values from being mixed up.
        return f"proc-{os.getpid()}-{_PROCESS_TOKEN}"


_PROCESS_TOKEN = secrets.token_hex(4)


def uuid7(moment_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms timestamp, version, variant, 74 random bits."""
    ms = int(time.time() * 1000) if moment_ms is None else moment_ms
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def parse_local_time(text: str, tz: tzinfo, now: datetime) -> datetime:
    """A time typed by a person, as UTC: ``08:57`` (today, local), ``2026-11-28 08:57`` (local), or an
    ISO instant with its zone. Raises ValueError saying which forms are understood."""
    text = text.strip()
    try:
        if len(text) <= 5 and ":" in text:
            hours, minutes = (int(part) for part in text.split(":"))
            local = now.astimezone(tz).replace(hour=hours, minute=minutes, second=0, microsecond=0)
        else:
            local = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if local.tzinfo is None:
                local = local.replace(tzinfo=tz)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use HH:MM (today), YYYY-MM-DD HH:MM (local time) "
                         "or an ISO 8601 instant with its zone") from None
    return local.astimezone(UTC)


def parse_hhmm(text: str) -> clock_time:
    """A checked HH:MM (LOCAL_TIME) as a time of day."""
    hours, minutes = text.split(":")
    return clock_time(int(hours), int(minutes))


def work_day_start(local: datetime, day_starts_at: str) -> datetime:
    """The start of the work day ``local`` (a zone-aware local time) belongs to, when work days start at
    ``day_starts_at`` (HH:MM): with 04:00 a punch at 02:00 belongs to the day before. The kiosk's IN/OUT
    rule and the hub's day sheet both count days by this."""
    start = datetime.combine(local.date(), parse_hhmm(day_starts_at), tzinfo=local.tzinfo)
    return start if local >= start else start - timedelta(days=1)


def work_day_bounds(day: date, tz: tzinfo, day_starts_at: str) -> tuple[datetime, datetime]:
    """The instants (zone-aware) the work day ``day`` starts and ends at, in ``tz``."""
    start = datetime.combine(day, parse_hhmm(day_starts_at), tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), parse_hhmm(day_starts_at), tzinfo=tz)
