"""Where the kiosk is: a GPS fix checked against the branch geofence, for the punch policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hardware.geofence import check_geofence

if TYPE_CHECKING:
    from hardware.config import GeofenceConfig
    from hardware.gps import GpsReader


@dataclass(frozen=True)
class Position:
    """Where the kiosk (or field device) is, from GPS, checked against the branch geofence."""

    lat: float
    lon: float
    accuracy_m: float | None  # None when the receiver sent no HDOP
    inside: bool | None  # None: no geofence, or the fix is too coarse to tell


class GpsLocator:
    """The position the policy asks for at each punch: the receiver's freshest fix, or None."""

    def __init__(self, gps: GpsReader, geofence: GeofenceConfig) -> None:
        self.gps, self.geofence = gps, geofence

    def __call__(self) -> Position | None:
        fix = self.gps.fix()
        if fix is None:
            return None
        verdict = check_geofence(fix, self.geofence) if self.geofence.policy != "off" else None
        return Position(fix.lat, fix.lon, fix.accuracy_m, None if verdict is None else verdict.inside)
