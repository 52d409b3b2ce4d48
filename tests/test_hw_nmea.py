"""NMEA parsing against real receiver captures (u-blox, SiRF, GN/BD talkers, no fix, corrupted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hardware.nmea import NmeaTracker, gga_sentence, nmea_sentence, parse_lines, rmc_sentence

NMEA = Path(__file__).parent / "fixtures" / "nmea"


def lines(name: str) -> list[str]:
    return (NMEA / name).read_text().splitlines()


@pytest.mark.parametrize("name", sorted(p.name for p in NMEA.glob("*.nmea") if p.name != "corrupted.nmea"))
def test_every_captured_sentence_checks_out(name: str) -> None:
    fixes, tracker = parse_lines(lines(name))
    assert tracker.stats.bad_checksum == 0
    assert tracker.stats.unparsable == 0
    assert tracker.stats.sentences == len([x for x in lines(name) if x.strip()])


@pytest.mark.parametrize("name, count, first, last_utc, sats, hdop", [
    # SiRF IV, southern + eastern hemisphere: signs must come out right.
    ("sirf4_globalsat_bu353s4.nmea", 12, (-37.784788, 175.314897),
     datetime(2014, 12, 31, 3, 7, 30, tzinfo=UTC), 7, 1.1),
    # u-blox M8 with GN talkers and a DGPS fix (quality 2), western hemisphere.
    ("ublox_m8030_gn.nmea", 3, (37.748785, -122.507205),
     datetime(2021, 2, 27, 18, 3, 27, tzinfo=UTC), 10, 1.05),
    # SiRF-TriG with BeiDou: fixes only after 07:41:55, in Shanghai.
    ("sirf_trig_beidou_bd.nmea", 5, (31.24795, 121.587438),
     datetime(2015, 2, 25, 7, 41, 59, 799000, tzinfo=UTC), 7, 1.1),
])
def test_fixes_from_captures(name, count, first, last_utc, sats, hdop) -> None:
    fixes, tracker = parse_lines(lines(name))
    assert len(fixes) == count
    assert fixes[0].lat == pytest.approx(first[0], abs=1e-6)
    assert fixes[0].lon == pytest.approx(first[1], abs=1e-6)
    assert fixes[-1].utc == last_utc
    assert fixes[-1].sats == sats
    assert fixes[-1].hdop == pytest.approx(hdop)
    assert tracker.last_time.utc == last_utc


def test_dgps_quality_and_talker_are_kept() -> None:
    fixes, _ = parse_lines(lines("ublox_m8030_gn.nmea"))
    assert {f.quality for f in fixes} == {2}
    assert {f.talker for f in fixes} == {"GN"}
    assert fixes[0].altitude_m == pytest.approx(-13.2)


def test_ublox_cold_start_gives_no_fix_and_no_trusted_time() -> None:
    fixes, tracker = parse_lines(lines("ublox6_coldstart_nofix.nmea"))
    assert fixes == []
    # The receiver prints 11:39:41 before it has a fix; that time must not be trusted.
    assert tracker.last_time is None
    assert "no fix" in tracker.no_fix_reason
    assert tracker.stats.ignored == 16  # 5 TXT, 3 VTG, 5 GSV, 3 GLL: read but not used


def test_losing_the_fix_stops_fixes_but_keeps_the_last_trusted_time() -> None:
    fixes, tracker = parse_lines(lines("sirf3_bu353_glonass_gn.nmea"))
    assert not tracker.fix_valid
    assert fixes[-1].utc == datetime(2014, 5, 26, 8, 14, 19, tzinfo=UTC)
    assert fixes[-1].hdop == pytest.approx(4.54)
    assert tracker.last_time.utc == datetime(2014, 5, 26, 8, 14, 19, tzinfo=UTC)
    assert tracker.no_fix_reason == "receiver reports no fix (RMC status V)"


def test_gga_dated_by_an_earlier_zda_or_rmc() -> None:
    # In this capture GGA (GP) arrives after RMC/ZDA (GN/GP) of the previous second.
    fixes, _ = parse_lines(lines("sirf3_bu353_glonass_gn.nmea"))
    assert fixes[0].utc == datetime(2014, 5, 26, 8, 14, 12, tzinfo=UTC)
    assert all(f.utc is not None for f in fixes)


def test_corrupted_lines_are_all_rejected_and_counted() -> None:
    corrupted = lines("corrupted.nmea")
    fixes, tracker = parse_lines(corrupted)
    assert fixes == []
    assert tracker.stats.sentences == 0
    assert tracker.stats.invalid == len(corrupted)
    assert tracker.stats.bad_checksum == 5


@pytest.mark.parametrize("noise", ["\x00\xff", "~~garbage~~", "\ufffd\ufffd"])
def test_noise_before_the_dollar_is_skipped(noise: str) -> None:
    good = lines("sirf4_globalsat_bu353s4.nmea")[0]
    tracker = NmeaTracker()
    assert tracker.feed_line(noise + good, 0) is not None


def test_midnight_between_rmc_and_gga_moves_the_date() -> None:
    tracker = NmeaTracker()
    before = datetime(2025, 3, 31, 23, 59, 59, 900000, tzinfo=UTC)
    after = before + timedelta(seconds=0.2)
    tracker.feed_line(rmc_sentence(before, 31.2, 121.4, True), 0)
    fix = tracker.feed_line(gga_sentence(after, 31.2, 121.4, 1, 8, 1.0), 1)
    assert fix.utc.date() == after.date()


def test_estimated_position_is_not_a_fix() -> None:
    tracker = NmeaTracker()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    tracker.feed_line(rmc_sentence(now, 31.2, 121.4, False), 0)
    assert tracker.feed_line(gga_sentence(now, 31.2, 121.4, 6, 4, 2.0), 0) is None
    assert "quality 6" in tracker.no_fix_reason


def test_rmc_only_receivers_still_give_fixes() -> None:
    tracker = NmeaTracker()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = [tracker.feed_line(rmc_sentence(start + timedelta(seconds=i), -33.9, 18.4, True), i) for i in range(3)]
    assert out[0] is None and out[1] is not None and out[2].sats is None
    assert out[2].lat == pytest.approx(-33.9, abs=1e-6)


def test_encoders_round_trip_through_pynmea2() -> None:
    when = datetime(2025, 6, 1, 12, 30, 15, 250000, tzinfo=UTC)
    fixes, tracker = parse_lines([gga_sentence(when, -0.5, -179.25, 1, 7, 1.4).strip()])
    assert tracker.stats.bad_checksum == 0
    banner = "GPTXT,01,01,02,u-blox ag - www.u-blox.com"
    assert nmea_sentence(banner) == f"${banner}*50\r\n"  # the checksum a u-blox 6 prints


def test_fix_json_shape_and_accuracy() -> None:
    fixes, _ = parse_lines(lines("sirf4_globalsat_bu353s4.nmea"))
    assert fixes[0].utc is None  # the capture starts with a GGA: no date seen yet
    data = fixes[1].as_json()
    assert set(data) == {"lat", "lon", "quality", "sats", "hdop", "utc"}
    assert data["utc"] == "2014-12-31T03:07:20.000Z"
    assert fixes[0].accuracy_m == pytest.approx(5.5)  # HDOP 1.1 x default UERE 5 m
