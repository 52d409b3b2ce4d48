"""NMEA parsing against real receiver captures (u-blox, SiRF, GN/BD talkers, no fix, corrupted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hardware.nmea import Fix, GpsTime, NmeaTracker, gga_sentence, nmea_sentence, parse_lines, rmc_sentence

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


# -- exact behaviour (pinned by mutation testing, scripts/mutate.py) -------------------------------

@pytest.mark.parametrize("name, sentences, ignored, fixes, valid", [
    ("sirf3_bu353_glonass_gn.nmea", 71, 12, 8, False),
    ("sirf4_globalsat_bu353s4.nmea", 42, 6, 12, True),
    ("sirf_trig_beidou_bd.nmea", 79, 39, 5, True),
    ("ublox6_coldstart_nofix.nmea", 25, 16, 0, False),
    ("ublox_m8030_gn.nmea", 48, 36, 3, True),
])
def test_capture_counts_are_exact(name, sentences, ignored, fixes, valid) -> None:
    found, tracker = parse_lines(lines(name))
    assert (tracker.stats.sentences, tracker.stats.ignored, tracker.stats.fixes) == (sentences, ignored, fixes)
    assert len(found) == fixes and tracker.fix_valid is valid


def test_a_gga_fix_carries_every_field_and_the_arrival_times() -> None:
    capture = lines("sirf4_globalsat_bu353s4.nmea")  # GGA, GSA, RMC, GGA ...
    tracker = NmeaTracker(uere_m=3.0)
    first = tracker.feed_line(capture[0], 1_000, wall_s=50.0)
    assert first.utc is None and tracker.last_time is None, "no date seen yet: the time is not trusted"
    tracker.feed_line(capture[1], 2_000, wall_s=51.0)
    assert tracker.feed_line(capture[2], 3_000, wall_s=52.0) is None, "GGA gives the fixes on this receiver"
    fix = tracker.feed_line(capture[3], 4_000, wall_s=53.0)
    assert (fix.quality, fix.sats, fix.hdop, fix.mono_ns, fix.talker, fix.uere_m) == (1, 8, 1.1, 4_000, "GP", 3.0)
    assert fix.utc == datetime(2014, 12, 31, 3, 7, 20, tzinfo=UTC)
    assert fix.altitude_m == pytest.approx(59.8)
    assert fix.accuracy_m == pytest.approx(3.3)
    assert tracker.last_time == GpsTime(fix.utc, 4_000, 53.0) and tracker.fix_valid is True


def test_an_rmc_only_receiver_gives_fixes_with_the_gsa_hdop_from_the_second_rmc() -> None:
    """The SiRF IV capture without its GGA sentences: what a receiver that sends no GGA gives."""
    capture = [line for line in lines("sirf4_globalsat_bu353s4.nmea") if "GGA" not in line]
    tracker = NmeaTracker(uere_m=4.0)
    out = [tracker.feed_line(line, 100 + i, wall_s=float(i)) for i, line in enumerate(capture)]
    fixes = [f for f in out if f is not None]
    assert len(fixes) == 11 == tracker.stats.fixes and tracker.fix_valid is True
    first_rmc = next(i for i, line in enumerate(capture) if "RMC" in line)
    assert out[first_rmc] is None and tracker.last_time.utc == fixes[-1].utc
    fix = fixes[0]
    assert (fix.quality, fix.sats, fix.hdop, fix.altitude_m, fix.talker, fix.uere_m) == (1, None, 1.1, None, "GP", 4.0)
    assert fix.utc == datetime(2014, 12, 31, 3, 7, 20, tzinfo=UTC) and fix.mono_ns == 100 + out.index(fix)
    assert fix.lat == pytest.approx(-37.784792, abs=1e-6) and fix.lon == pytest.approx(175.314897, abs=1e-6)
    assert tracker.last_time.mono_ns == 100 + len(capture) - 1 and tracker.last_time.wall_s == len(capture) - 1


def test_an_rmc_without_a_date_gives_no_trusted_time() -> None:
    tracker = NmeaTracker()
    tracker.feed_line(nmea_sentence("GPRMC,120000.00,A,3112.0000,N,12124.0000,E,0.0,,,,,A"), 1)
    assert tracker.last_time is None and tracker.stats.sentences == 1


def test_a_zda_dates_the_following_gga() -> None:
    capture = lines("sirf3_bu353_glonass_gn.nmea")
    zda = next(line for line in capture if "ZDA" in line)
    gga = capture[capture.index(zda) + 1]
    tracker = NmeaTracker()
    assert tracker.feed_line(gga, 0).utc is None
    tracker.feed_line(zda, 1)
    assert tracker.feed_line(gga, 2).utc == datetime(2014, 5, 26, 8, 14, 12, tzinfo=UTC)
    assert tracker.stats.ignored == 0


def test_gsa_hdop_is_kept_until_another_gsa_gives_one_and_fix_type_1_is_a_reason() -> None:
    tracker = NmeaTracker()
    cold = next(line for line in lines("ublox6_coldstart_nofix.nmea") if "GSA" in line)
    tracker.feed_line(nmea_sentence("GPGSA,A,3,01,02,03,04,,,,,,,,,2.0,1.5,1.2"), 0)
    assert tracker.no_fix_reason == "no sentence yet", "a 3D fix type is no reason"
    tracker.feed_line(nmea_sentence("GPGSA,A,3,01,02,03,04,,,,,,,,,,,"), 0)  # no DOP fields
    when = datetime(2025, 1, 1, tzinfo=UTC)
    tracker.feed_line(rmc_sentence(when, 31.2, 121.4, True), 0)
    tracker.feed_line(rmc_sentence(when, 31.2, 121.4, True), 0)
    assert tracker.feed_line(rmc_sentence(when, 31.2, 121.4, True), 0).hdop == 1.5
    tracker.feed_line(cold, 0)
    assert tracker.no_fix_reason == "receiver reports no fix (GSA)"


def test_no_fix_reasons_say_how_many_satellites() -> None:
    _, cold = parse_lines(lines("ublox6_coldstart_nofix.nmea"))
    assert cold.no_fix_reason == "no fix (0 satellites used)"
    tracker = NmeaTracker()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    tracker.feed_line(gga_sentence(now, None, None, 0, 3, None), 0)
    assert tracker.no_fix_reason == "no fix (3 satellites used)" and tracker.fix_valid is False
    tracker.feed_line(gga_sentence(now, 31.2, 121.4, 6, 4, 2.0), 0)
    assert tracker.no_fix_reason == "quality 6 is not a measured position (4 satellites used)"
    tracker.feed_line(nmea_sentence("GPGGA,000000.00,,,,,7,,,,,,,,"), 0)
    assert tracker.no_fix_reason == "quality 7 is not a measured position (0 satellites used)"


@pytest.mark.parametrize("body", [
    "GPGGA,120000.00,,,12124.0000,E,1,08,1.0,20.0,M,0.0,M,,",  # a fix without latitude
    "GPGGA,120000.00,3112.0000,N,,,1,08,1.0,20.0,M,0.0,M,,",   # a fix without longitude
])
def test_a_gga_fix_missing_half_its_position_is_no_fix(body: str) -> None:
    tracker = NmeaTracker(fix_valid=True)
    assert tracker.feed_line(nmea_sentence(body), 0) is None
    assert tracker.fix_valid is False and tracker.stats.unparsable == 0 and tracker.stats.fixes == 0


@pytest.mark.parametrize("body", [
    "GPRMC,120000.00,A,,,12124.0000,E,0.0,,010125,,,A",
    "GPRMC,120000.00,A,3112.0000,N,,,0.0,,010125,,,A",
])
def test_an_rmc_missing_half_its_position_is_no_fix(body: str) -> None:
    tracker = NmeaTracker()
    out = [tracker.feed_line(nmea_sentence(body), i) for i in range(3)]
    assert out == [None, None, None] and tracker.stats.fixes == 0 and tracker.stats.unparsable == 0
    assert tracker.last_time.utc == datetime(2025, 1, 1, 12, tzinfo=UTC), "the receiver vouches for the time"


def test_a_checksummed_sentence_with_an_unusable_field_is_counted_not_raised() -> None:
    """Dropped whole: not a fix, and it does not make the tracker believe it has one."""
    tracker = NmeaTracker()
    assert tracker.feed_line(nmea_sentence("GPGGA,120000.00,31x2.0000,N,12124.0000,E,1,08,1.0,20.0,M,0.0,M,,"),
                             0) is None
    assert (tracker.stats.sentences, tracker.stats.unparsable, tracker.stats.fixes) == (1, 1, 0)
    assert tracker.fix_valid is False
    assert tracker.feed_line(nmea_sentence("GPGGA,120000.00,31x2.0000,N,12124.0000,E,1,08,1.0,20.0,M,0.0,M,,"),
                             0) is None
    assert tracker.stats.unparsable == 2


def test_the_longest_sentence_kept_is_120_characters() -> None:
    def txt(length: int) -> str:
        body = "GPTXT,01,01,02," + "x" * (length - 19)
        line = nmea_sentence(body).strip()
        assert len(line) == length
        return line

    tracker = NmeaTracker()
    tracker.feed_line(txt(120), 0)
    assert (tracker.stats.sentences, tracker.stats.ignored, tracker.stats.unparsable) == (1, 1, 0)
    tracker.feed_line(txt(121), 0)
    tracker.feed_line(txt(200), 0)
    assert (tracker.stats.sentences, tracker.stats.unparsable) == (1, 2)


@pytest.mark.parametrize("dated, gga_time, expected", [
    # a GGA from just before midnight after the RMC of just after it: yesterday
    (datetime(2025, 4, 1, 0, 0, 0, 100000, tzinfo=UTC), "235959.90", datetime(2025, 3, 31, 23, 59, 59, 900000)),
    # exactly half a day either side of the last date stays on that date
    (datetime(2025, 4, 1, 12, 0, tzinfo=UTC), "000000.00", datetime(2025, 4, 1, 0, 0)),
    (datetime(2025, 4, 1, 0, 0, tzinfo=UTC), "120000.00", datetime(2025, 4, 1, 12, 0)),
])
def test_a_time_of_day_is_dated_within_half_a_day_of_the_last_date(dated, gga_time, expected) -> None:
    tracker = NmeaTracker()
    tracker.feed_line(rmc_sentence(dated, 31.2, 121.4, False), 0)
    fix = tracker.feed_line(nmea_sentence(f"GPGGA,{gga_time},3112.0000,N,12124.0000,E,1,08,1.0,20.0,M,0.0,M,,"), 1)
    assert fix.utc == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize("lat, lon, ns, ew", [(-0.5, -179.25, "S", "W"), (0.0, 0.0, "N", "E"),
                                              (0.5, 0.75, "N", "E"), (31.24795, 121.587438, "N", "E")])
def test_encoders_write_what_the_tracker_reads_back(lat, lon, ns, ew) -> None:
    when = datetime(2025, 6, 1, 12, 30, 15, 250000, tzinfo=UTC)
    gga = gga_sentence(when, lat, lon, 1, 7, 1.4, altitude_m=12.5, talker="GP")
    rmc = rmc_sentence(when, lat, lon, True, talker="GP")
    assert gga.split(",")[3:6:2] == [ns, ew] and gga.startswith("$GPGGA,123015.25,")
    assert rmc.split(",")[4:7:2] == [ns, ew] and rmc.startswith("$GPRMC,123015.25,A,")
    for sentence, at in ((gga, 2), (rmc, 3)):
        assert [len(f.split(".")[0]) for f in sentence.split(",")[at:at + 3:2]] == [4, 5], "ddmm / dddmm"
    assert parse_lines([gga_sentence(when, lat, lon, 1, 7, 1.4)])[0][0].altitude_m == 20.0
    fixes, tracker = parse_lines([rmc, gga], start_ns=1000, step_ns=10)
    assert tracker.stats.bad_checksum == 0 and len(fixes) == 1
    fix = fixes[0]
    assert (fix.lat, fix.lon) == (pytest.approx(lat, abs=1e-6), pytest.approx(lon, abs=1e-6))
    assert (fix.quality, fix.sats, fix.hdop, fix.altitude_m, fix.utc, fix.mono_ns) == (1, 7, 1.4, 12.5, when, 1010)


def test_encoders_for_no_fix_and_no_hdop() -> None:
    when = datetime(2025, 6, 1, 12, 30, 15, tzinfo=UTC)
    assert ",99.99," in gga_sentence(when, 31.2, 121.4, 1, 7, None)
    assert gga_sentence(when, 31.2, 121.4, 0, 3, 1.0) == nmea_sentence("GNGGA,123015.00,,,,,0,03,99.99,,,,,,")
    assert gga_sentence(when, None, 121.4, 1, 3, 1.0) == nmea_sentence("GNGGA,123015.00,,,,,0,03,99.99,,,,,,")
    assert gga_sentence(when, 31.2, None, 1, 3, 1.0) == nmea_sentence("GNGGA,123015.00,,,,,0,03,99.99,,,,,,")
    assert rmc_sentence(when, 31.2, 121.4, False) == nmea_sentence("GNRMC,123015.00,V,,,,,,,010625,,,N")
    assert rmc_sentence(when, None, 121.4, True) == nmea_sentence("GNRMC,123015.00,V,,,,,,,010625,,,N")
    assert rmc_sentence(when, 31.2, None, True) == nmea_sentence("GNRMC,123015.00,V,,,,,,,010625,,,N")


def test_fix_json_rounds_to_seven_decimals_and_prints_milliseconds() -> None:
    fixes, _ = parse_lines(lines("sirf_trig_beidou_bd.nmea"))
    assert fixes[-1].as_json()["utc"] == "2015-02-25T07:41:59.799Z"
    fix = Fix(31.123456789, -121.987654321, 1, 8, 0.9, None, 0)
    assert fix.as_json() == {"lat": 31.1234568, "lon": -121.9876543, "quality": 1, "sats": 8, "hdop": 0.9,
                             "utc": None}


def test_an_altitude_that_is_not_a_number_is_left_out() -> None:
    tracker = NmeaTracker()
    fix = tracker.feed_line(nmea_sentence("GPGGA,120000.00,3112.0000,N,12124.0000,E,1,08,1.0,abc,M,0.0,M,,"), 0)
    assert fix is not None and fix.altitude_m is None and fix.sats == 8
    fix = tracker.feed_line(nmea_sentence("GPGGA,120001.00,3112.0000,N,12124.0000,E,1,,,,M,0.0,M,,"), 0)
    assert (fix.altitude_m, fix.sats, fix.hdop) == (None, None, None)


def test_every_line_without_a_sentence_is_counted() -> None:
    tracker = NmeaTracker()
    for noise in ("GPGGA,120000.00,,,,,0,00,99.99,,,,,,*66", "~~~", "   "):
        assert tracker.feed_line(noise, 0) is None
    assert tracker.stats.unparsable == 2, "a blank line is not noise"


def test_proprietary_sentences_are_read_and_ignored() -> None:
    capture = [line for line in lines("sirf_trig_beidou_bd.nmea") if line.startswith("$PSRF")]
    _, tracker = parse_lines(capture)
    assert capture and tracker.stats.sentences == tracker.stats.ignored == len(capture)


def test_the_fix_json_time_is_utc_whatever_the_machine_zone(monkeypatch) -> None:
    import time
    fixes, _ = parse_lines(lines("sirf_trig_beidou_bd.nmea"))
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert fixes[-1].as_json()["utc"] == "2015-02-25T07:41:59.799Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_receiver_time_runs_on_with_the_monotonic_clock() -> None:
    utc = datetime(2025, 1, 1, 12, tzinfo=UTC)
    reading = GpsTime(utc, 5_000_000_000, wall_s=1.5)
    assert reading.now_utc(7_500_000_000) == utc + timedelta(seconds=2.5)
    assert reading.age_s(7_500_000_000) == 2.5
    assert 0 < reading.now_utc().timestamp() - utc.timestamp() and reading.age_s() > 0
    fix = Fix(1.0, 2.0, 1, 8, None, utc, 1_000_000_000)
    assert fix.age_s(1_250_000_000) == 0.25 and fix.accuracy_m is None and fix.age_s() > 0


def test_parse_lines_stamps_each_line_from_start_by_step() -> None:
    capture = lines("sirf4_globalsat_bu353s4.nmea")
    assert {f.mono_ns for f in parse_lines(capture)[0]} == {0}
    stamped, _ = parse_lines(capture, start_ns=7, step_ns=3)
    assert [f.mono_ns for f in stamped][:3] == [7, 7 + 3 * 3, 7 + 6 * 3]
