"""Where a field punch was made: the phone's fix against the employee's sites, with the kiosk's geofence rule
(hardware/geofence.py `check_geofence`: a verdict only when it holds for the whole accuracy disc), and the
flags the kiosk's punch policy gives (kiosk/punching/policy.py): no_gps_fix, geofence_uncertain,
outside_geofence."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hardware.config import GeofenceConfig
from hardware.geofence import Verdict, check_geofence, haversine_m
from hardware.nmea import Fix
from kiosk.base.errors import InvalidInput

POLICIES = ("off", "flag", "refuse")


@dataclass(frozen=True)
class Site:
    name: str
    lat: float
    lon: float
    radius_m: float
    max_accuracy_m: float = 100.0


def parse_site(text: str) -> Site:
    """A site written NAME:LAT,LON,RADIUS_M (the CLI's --site and the console's sites box)."""
    name, _, rest = text.strip().rpartition(":")
    try:
        lat, lon, radius = (float(part) for part in rest.split(","))
    except ValueError:
        raise InvalidInput(f"site {text.strip()!r} is not NAME:LAT,LON,RADIUS_M",
                           fix="For example 'Client A:31.2304,121.4737,150'.") from None
    return Site(name.strip() or "site", lat, lon, radius)


def site_text(site: Site) -> str:
    """A site as parse_site reads it."""
    return f"{site.name}:{site.lat:g},{site.lon:g},{site.radius_m:g}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two positions, with the kiosk's formula (hardware/geofence.py)."""
    return haversine_m(lat1, lon1, lat2, lon2)


@dataclass
class Placement:
    """The verdict over all of an employee's sites: inside one of them, else uncertain, else outside."""

    flags: list[str] = field(default_factory=list)
    refused: bool = False
    site: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)


def place(policy: str, sites: list[Site], lat: float | None, lon: float | None,
          accuracy_m: float | None) -> Placement:
    result = Placement()
    if policy == "off":
        return result
    if lat is None or lon is None or not sites:
        result.flags.append("no_gps_fix" if sites else "no_field_site")
        return result
    # The browser gives its accuracy in metres directly: as a Fix with HDOP = accuracy and UERE = 1 m.
    fix = Fix(lat, lon, quality=1, sats=None, hdop=accuracy_m, utc=None, mono_ns=time.monotonic_ns(), uere_m=1.0)
    verdicts = []
    for site in sites:
        verdict = check_geofence(fix, GeofenceConfig(policy=policy, lat=site.lat, lon=site.lon,
                                                     radius_m=site.radius_m, max_accuracy_m=site.max_accuracy_m))
        verdicts.append((site, verdict.verdict))
        result.checks.append({"site": site.name, **verdict.as_dict()})
    inside = [site for site, verdict in verdicts if verdict is Verdict.INSIDE]
    if inside:
        result.site = inside[0].name
    elif any(verdict is Verdict.UNCERTAIN for _, verdict in verdicts):
        result.flags.append("geofence_uncertain")
    elif policy == "refuse":
        result.refused = True
    else:
        result.flags.append("outside_geofence")
    return result
