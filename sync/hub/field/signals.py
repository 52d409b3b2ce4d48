"""Fraud signals on a field punch, flagged, never hidden: they become hub flags of the stored punch
(`sync.hub.ingest.ingest` ``extra_flags``), so HR sees them in the export and the console's punch lists.

- ``accuracy_worse_than_radius``: the fix's accuracy disc is wider than the radius of the nearest site (the
  phone cannot tell whether it is there; a fake-GPS app often reports a coarse fix);
- ``impossible_travel``: from the employee's previous punch with a position (any device) to this one, faster
  than ``field.max_speed_kmh`` in a straight line;
- ``identical_fix``: latitude, longitude and accuracy equal to the previous punch's to the last digit (a real
  receiver never repeats itself exactly; a replayed or typed-in position does);
- ``mocked_location``: the page reported a mocked position (only where the platform exposes it: browsers
  generally do not, an Android WebView wrapper may).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kiosk.base.timeutil import iso_utc, parse_iso
from sync.hub.field.geofence import Site, distance_m

SIGNALS = ("accuracy_worse_than_radius", "impossible_travel", "identical_fix", "mocked_location")


def fraud_signals(tx: Any, employee_id: str, when: datetime, lat: float | None, lon: float | None,
                  accuracy_m: float | None, mocked: bool, sites: list[Site], max_speed_kmh: float) -> list[str]:
    """The signals of a punch at ``when`` (the time it is dated with) with the fix given."""
    flags: list[str] = []
    if lat is not None and lon is not None and accuracy_m is not None and sites:
        nearest = min(sites, key=lambda s: distance_m(lat, lon, s.lat, s.lon))
        if accuracy_m > nearest.radius_m:
            flags.append("accuracy_worse_than_radius")
    if lat is not None and lon is not None:
        before = tx.row("SELECT ts_utc, lat, lon, accuracy_m FROM punches WHERE employee_id = ? AND ts_utc <= ? "
                        "AND kind = 'punch' AND lat IS NOT NULL AND lon IS NOT NULL ORDER BY ts_utc DESC LIMIT 1",
                        [employee_id, iso_utc(when)])
        if before is not None:
            metres = distance_m(before["lat"], before["lon"], lat, lon)
            seconds = (when - parse_iso(before["ts_utc"])).total_seconds()
            if metres > 0 and metres / max(seconds, 1.0) * 3.6 > max_speed_kmh:
                flags.append("impossible_travel")
            if (before["lat"], before["lon"], before["accuracy_m"]) == (lat, lon, accuracy_m):
                flags.append("identical_fix")
    if mocked:
        flags.append("mocked_location")
    return flags
