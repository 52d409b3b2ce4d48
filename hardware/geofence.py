"""Is the kiosk (or a field punch) where it should be? Haversine distance, with the fix's accuracy.

The accuracy of a fix is taken as HDOP x UERE (`gps.uere_m`, default 5 m): roughly one standard
deviation of horizontal error for a consumer receiver. A verdict is only given when it holds for
the whole accuracy disc around the fix:

  INSIDE     distance + accuracy <= radius     (even the worst case is inside)
  OUTSIDE    distance - accuracy >  radius     (even the best case is outside)
  UNCERTAIN  the disc straddles the edge, the fix has no HDOP, or accuracy > max_accuracy_m
  NO_FIX     no fix, or a fix older than gps.max_fix_age_s
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hardware.config import GeofenceConfig

if TYPE_CHECKING:  # the NMEA parser (and pynmea2, ~10 ms of CPU) loads only on a kiosk with a GPS
    from hardware.nmea import Fix

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius


class Verdict(enum.Enum):
    INSIDE = "inside"
    OUTSIDE = "outside"
    UNCERTAIN = "uncertain"
    NO_FIX = "no_fix"


@dataclass(frozen=True)
class GeofenceResult:
    verdict: Verdict
    distance_m: float | None
    accuracy_m: float | None
    radius_m: float

    @property
    def inside(self) -> bool | None:
        """True inside, False outside, None when no verdict could be given."""
        return {Verdict.INSIDE: True, Verdict.OUTSIDE: False}.get(self.verdict)

    def as_dict(self) -> dict:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)
        return {"verdict": self.verdict.value, "distance_m": rounded(self.distance_m),
                "accuracy_m": rounded(self.accuracy_m), "radius_m": self.radius_m}


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (spherical Earth, < 0.5 % error)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def check_geofence(fix: Fix | None, config: GeofenceConfig, max_fix_age_s: float | None = None,
                   now_ns: int | None = None) -> GeofenceResult:
    """The verdict for a fix against the configured circle (see the module docstring).

    The fix's accuracy is ``fix.accuracy_m`` (HDOP x the receiver's uere_m, stamped by GpsReader).
    With ``max_fix_age_s`` an older fix counts as none (GpsReader.fix() already returns only
    fresh fixes).
    """
    if config.lat is None or config.lon is None:
        raise ValueError("geofence has no centre (geofence.lat / geofence.lon)")
    if fix is None or (max_fix_age_s is not None and fix.age_s(now_ns) > max_fix_age_s):
        return GeofenceResult(Verdict.NO_FIX, None, None, config.radius_m)
    distance = haversine_m(fix.lat, fix.lon, config.lat, config.lon)
    accuracy = fix.accuracy_m
    if accuracy is None or accuracy > config.max_accuracy_m:
        verdict = Verdict.UNCERTAIN
    elif distance + accuracy <= config.radius_m:
        verdict = Verdict.INSIDE
    elif distance - accuracy > config.radius_m:
        verdict = Verdict.OUTSIDE
    else:
        verdict = Verdict.UNCERTAIN
    return GeofenceResult(verdict, distance, accuracy, config.radius_m)
