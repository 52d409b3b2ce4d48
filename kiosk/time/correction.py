"""Correcting an unverified punch's time from a clock anchor of the same boot (used by the hub's export).

true_ts = anchor_utc + (punch.mono_ns - anchor_mono_ns), with the anchor nearest the punch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kiosk.base.timeutil import parse_iso


def corrected_utc(punch_mono_ns: int, punch_boot_id: str, anchors: list[dict]) -> datetime | None:
    """The true time of an unverified punch from the nearest anchor of the same boot, if any."""
    same_boot = [a for a in anchors if a["boot_id"] == punch_boot_id]
    if not same_boot:
        return None
    best = min(same_boot, key=lambda a: abs(a["mono_ns"] - punch_mono_ns))
    return parse_iso(best["utc"]) + timedelta(microseconds=(punch_mono_ns - best["mono_ns"]) / 1000)
