"""GPS receiver on a real pty fed with captured NMEA; staleness, silence, unplug; the fake receiver."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hardware.config import GpsConfig
from hardware.device import DeviceState
from hardware.gps import open_gps

NMEA = Path(__file__).parent / "fixtures" / "nmea"
DEADLINE_S = 30.0  # an upper bound for a loaded machine: every wait ends as soon as its condition holds


def capture(name: str) -> bytes:
    return "".join(line + "\r\n" for line in (NMEA / name).read_text().splitlines()).encode()


def wait_state(device, state: DeviceState, timeout_s: float = DEADLINE_S) -> None:
    assert device.wait_for(lambda s: s.state == state, timeout_s), device.status


@pytest.fixture
def gps_on(serial_pty):
    started = []

    def _open(**settings):
        device = serial_pty("ttyACM0")
        config = GpsConfig(port=str(device.path), **{"reopen_interval_s": 0.05, **settings})
        gps = open_gps(config)
        gps.start()
        started.append(gps)
        wait_state(gps, DeviceState.STARTING)
        assert gps.wait_for(lambda s: "waiting for NMEA" in s.reason, DEADLINE_S)
        return device, gps

    yield _open
    for gps in started:
        gps.stop()


def test_captured_sirf_fixes_and_receiver_time(gps_on) -> None:
    device, gps = gps_on(max_fix_age_s=30)
    device.write(capture("sirf4_globalsat_bu353s4.nmea"))
    assert gps.wait_for(lambda s: gps.summary()["sentences"] == 42, DEADLINE_S)
    wait_state(gps, DeviceState.RUNNING)
    fix = gps.fix()
    assert fix.lat == pytest.approx(-37.784797, abs=1e-6) and fix.lon == pytest.approx(175.314903, abs=1e-6)
    assert fix.sats == 7 and fix.hdop == pytest.approx(1.1)
    when = gps.time()
    assert when.utc == datetime(2014, 12, 31, 3, 7, 30, tzinfo=UTC)
    assert abs(when.wall_s - time.time()) < DEADLINE_S  # our wall clock when it arrived: offset = utc - wall
    assert fix.accuracy_m == pytest.approx(1.1 * 5.0)
    # The receiver's clock, carried forward with the monotonic clock.
    assert when.now_utc(when.mono_ns + 2_500_000_000) == when.utc + timedelta(seconds=2.5)


def test_fix_lost_indoors_is_no_fix(gps_on) -> None:
    device, gps = gps_on(max_fix_age_s=30)
    device.write(capture("sirf3_bu353_glonass_gn.nmea"))
    last = datetime(2014, 5, 26, 8, 14, 19, tzinfo=UTC)  # the capture's last position, sent without a fix
    assert gps.wait_for(lambda s: (f := gps.latest_fix()) is not None and f.utc == last, DEADLINE_S)
    wait_state(gps, DeviceState.NO_FIX)
    assert "no fix" in gps.reason
    assert gps.fix() is None


def test_cold_start_receiver_gives_no_fix_and_no_time(gps_on) -> None:
    device, gps = gps_on()
    device.write(capture("ublox6_coldstart_nofix.nmea"))
    wait_state(gps, DeviceState.NO_FIX)
    assert gps.latest_fix() is None and gps.time() is None


def test_fix_goes_stale(gps_on) -> None:
    device, gps = gps_on(max_fix_age_s=0.5, stall_timeout_s=10)
    device.write(capture("ublox_m8030_gn.nmea"))
    wait_state(gps, DeviceState.RUNNING)
    # The receiver keeps talking (text only) but sends no more positions.
    deadline = time.monotonic() + DEADLINE_S
    while gps.state != DeviceState.NO_FIX and time.monotonic() < deadline:
        device.write(b"$GNTXT,01,01,02,ANTSTATUS=OK*25\r\n")
        time.sleep(0.1)
    assert gps.state == DeviceState.NO_FIX
    assert gps.fix() is None and gps.latest_fix() is not None


def test_garbage_and_corrupted_sentences_are_counted_not_fatal(gps_on) -> None:
    device, gps = gps_on()
    device.write(bytes(range(256)) * 3 + b"\r\n" + capture("corrupted.nmea") + capture("ublox_m8030_gn.nmea"))
    # The last sentences carry the fixes: once all three are in, every line before them was counted.
    assert gps.wait_for(lambda s: gps.summary()["fixes"] == 3, DEADLINE_S), gps.summary()
    wait_state(gps, DeviceState.RUNNING)
    summary = gps.summary()
    assert summary["bad_checksum"] == 5 and summary["unparsable"] == 8  # corrupted.nmea, line by line
    assert summary["fixes"] == 3


def test_silent_receiver_stalls_then_recovers(gps_on) -> None:
    device, gps = gps_on(stall_timeout_s=0.3, max_fix_age_s=30)
    device.write(capture("ublox_m8030_gn.nmea"))
    wait_state(gps, DeviceState.RUNNING)
    wait_state(gps, DeviceState.STALLED)
    assert "no data" in gps.reason
    device.write(capture("ublox_m8030_gn.nmea"))  # the port was reopened; talk again
    deadline = time.monotonic() + DEADLINE_S
    while gps.state != DeviceState.RUNNING and time.monotonic() < deadline:
        device.write(capture("ublox_m8030_gn.nmea"))
        time.sleep(0.1)
    assert gps.state == DeviceState.RUNNING


def test_wrong_baud_rate_looks_like_bytes_without_sentences(gps_on) -> None:
    device, gps = gps_on(stall_timeout_s=0.3)
    deadline = time.monotonic() + DEADLINE_S
    while gps.state != DeviceState.STALLED and time.monotonic() < deadline:
        device.write(b"\xf0\x0f\xfe~x\x80" * 10)
        time.sleep(0.05)
    assert gps.state == DeviceState.STALLED
    assert "wrong baud rate" in gps.reason


def test_unplug_and_replug(gps_on) -> None:
    device, gps = gps_on(max_fix_age_s=30)
    device.write(capture("sirf_trig_beidou_bd.nmea"))
    wait_state(gps, DeviceState.RUNNING)
    device.unplug()
    wait_state(gps, DeviceState.DISCONNECTED)
    device.plug()
    wait_state(gps, DeviceState.STARTING)
    device.write(capture("sirf_trig_beidou_bd.nmea"))
    wait_state(gps, DeviceState.RUNNING)
    assert gps.fix().lat == pytest.approx(31.248, abs=1e-3)


def test_fake_receiver_fixes_time_offset_and_faults() -> None:
    gps = open_gps(GpsConfig(port="fake:?lat=31.2304&lon=121.4737&interval_s=0.05&time_offset_s=-3600",
                             stall_timeout_s=0.3, reopen_interval_s=0.05, max_fix_age_s=0.5, uere_m=3.0))
    seen = []
    gps.on_fix = seen.append
    with gps:
        wait_state(gps, DeviceState.RUNNING)
        assert gps.fix().lat == pytest.approx(31.2304, abs=1e-6)
        offset = gps.time().now_utc() - datetime.now(UTC)
        assert offset.total_seconds() == pytest.approx(-3600, abs=1.0)
        gps.fake.lose_fix()
        wait_state(gps, DeviceState.NO_FIX)
        gps.fake.set_fix(22.5431, 114.0579, hdop=2.0)
        wait_state(gps, DeviceState.RUNNING)
        assert gps.fix().lat == pytest.approx(22.5431, abs=1e-6) and gps.fix().accuracy_m == 6.0
        assert gps.time().utc.timestamp() - gps.time().wall_s == pytest.approx(-3600, abs=1.0)
        gps.fake.go_silent()
        wait_state(gps, DeviceState.STALLED)
        gps.fake.resume()
        wait_state(gps, DeviceState.RUNNING)
        gps.fake.send_garbage()
        gps.fake.unplug()
        wait_state(gps, DeviceState.DISCONNECTED)
        gps.fake.replug()
        wait_state(gps, DeviceState.RUNNING)
    assert seen and gps.state == DeviceState.STOPPED


def test_unconfigured_gps_is_off() -> None:
    gps = open_gps(GpsConfig())
    gps.start()
    assert gps.state == DeviceState.OFF and gps.fix() is None and gps.time() is None
    gps.stop()


def test_cli_prints_fixes(invoke, tmp_path) -> None:
    result = invoke("hw", "read", "gps", "--port", "fake:?interval_s=0.05&lat=-33.8568&lon=151.2153",
                    "--count", "3", "--timeout", "10", "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 0, result.output
    fixes = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(fixes) == 3
    assert fixes[-1]["lat"] == pytest.approx(-33.8568, abs=1e-6) and fixes[-1]["sats"] == 9
    assert set(fixes[-1]) == {"lat", "lon", "quality", "sats", "hdop", "utc"}
    assert "valid sentence(s)" in result.stderr


def test_cli_times_out_without_a_fix(invoke, tmp_path) -> None:
    result = invoke("hw", "read", "gps", "--port", "fake:?fix=0&interval_s=0.05", "--timeout", "0.5",
                    "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 1
    assert "0 fix(es)" in result.stderr
