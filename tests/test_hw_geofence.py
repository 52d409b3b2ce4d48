"""Geofence: haversine distances and the inside/outside/uncertain verdict with fix accuracy."""

from __future__ import annotations

import math
import time

import pytest

from hardware.config import GeofenceConfig
from hardware.geofence import EARTH_RADIUS_M, Verdict, check_geofence, haversine_m
from hardware.nmea import Fix

BUND = (31.2400, 121.4900)  # a point on the Shanghai Bund


def fix_at(lat: float, lon: float, hdop: float | None = 1.0, age_s: float = 0.0) -> Fix:
    return Fix(lat, lon, 1, 8, hdop, None, time.monotonic_ns() - int(age_s * 1e9), uere_m=5.0)


def test_haversine_known_distances() -> None:
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-4)   # one degree on the equator
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-4)
    assert haversine_m(0, 0, 90, 0) == pytest.approx(math.pi * EARTH_RADIUS_M / 2)  # equator to pole
    assert haversine_m(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343_500, rel=0.005)  # Paris-London
    assert haversine_m(*BUND, *BUND) == 0
    assert haversine_m(0, 179.9, 0, -179.9) == pytest.approx(22_239, rel=1e-3)  # across the date line


def metres_north(metres: float) -> tuple[float, float]:
    return BUND[0] + metres / 111_195, BUND[1]


@pytest.mark.parametrize("offset_m, hdop, verdict", [
    (50, 1.0, Verdict.INSIDE),       # 50 + 5 <= 200
    (197, 1.0, Verdict.UNCERTAIN),   # the 5 m disc straddles the edge
    (203, 1.0, Verdict.UNCERTAIN),
    (260, 1.0, Verdict.OUTSIDE),     # 260 - 5 > 200
    (150, 12.0, Verdict.UNCERTAIN),  # 60 m accuracy reaches past the edge
    (50, 30.0, Verdict.UNCERTAIN),   # 150 m > max_accuracy_m 100
    (50, None, Verdict.UNCERTAIN),   # no HDOP: accuracy unknown
])
def test_verdicts_account_for_accuracy(offset_m, hdop, verdict) -> None:
    fence = GeofenceConfig(policy="flag", lat=BUND[0], lon=BUND[1], radius_m=200, max_accuracy_m=100)
    result = check_geofence(fix_at(*metres_north(offset_m), hdop), fence, max_fix_age_s=5)
    assert result.verdict == verdict
    assert result.inside is {Verdict.INSIDE: True, Verdict.OUTSIDE: False}.get(verdict)
    assert result.distance_m == pytest.approx(offset_m, rel=1e-3)


def test_stale_or_missing_fix_gives_no_verdict() -> None:
    fence = GeofenceConfig(policy="refuse", lat=BUND[0], lon=BUND[1])
    assert check_geofence(None, fence).verdict == Verdict.NO_FIX
    assert check_geofence(fix_at(*BUND, age_s=10), fence, max_fix_age_s=5).verdict == Verdict.NO_FIX
    assert check_geofence(fix_at(*BUND, age_s=10), fence).verdict == Verdict.INSIDE  # caller vouched for it
