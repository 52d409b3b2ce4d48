"""GPS receiver on a real pty fed with captured NMEA; staleness, silence, unplug; the fake receiver."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import StateHistory, wait_for

from hardware.config import GpsConfig
from hardware.device import DeviceState
from hardware.gps import open_gps
from hardware.nmea import NmeaTracker

NMEA = Path(__file__).parent / "fixtures" / "nmea"
DEADLINE_S = 60.0  # an upper bound for a loaded machine: every wait ends as soon as its condition holds
QUIET_S = 300.0  # a stall timeout that never fires in a test about something else


def capture(name: str) -> bytes:
    return "".join(line + "\r\n" for line in (NMEA / name).read_text().splitlines()).encode()


def counted(name: str) -> dict:
    """What the pure parser counts in a capture: the reader has read it all once its summary says the same."""
    tracker = NmeaTracker()
    for line in (NMEA / name).read_text().splitlines():
        tracker.feed_line(line, 0)
    stats = tracker.stats
    return {"sentences": stats.sentences, "fixes": stats.fixes, "bad_checksum": stats.bad_checksum,
            "unparsable": stats.unparsable, "ignored": stats.ignored}


@pytest.fixture
def gps_on(serial_pty):
    started = []

    def _open(**settings):
        device = serial_pty("ttyACM0")
        config = GpsConfig(port=str(device.path), **{"reopen_interval_s": 0.05, **settings})
        gps = open_gps(config)
        history = StateHistory(gps)
        gps.start()
        started.append(gps)
        # The port is open (and flushed) once the reader says it waits for sentences: write after that.
        history.wait(DeviceState.STARTING, reason="waiting for NMEA", timeout_s=DEADLINE_S)
        return device, gps, history

    yield _open
    for gps in started:
        gps.stop()


def test_captured_sirf_fixes_and_receiver_time(gps_on) -> None:
    device, gps, history = gps_on(max_fix_age_s=30, stall_timeout_s=QUIET_S)
    device.write(capture("sirf4_globalsat_bu353s4.nmea"))
    expected = counted("sirf4_globalsat_bu353s4.nmea")
    assert expected["sentences"] == 42
    wait_for(lambda: gps.summary() == expected, DEADLINE_S, what=lambda: f"{expected}: {gps.summary()}")
    history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
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
    device, gps, _ = gps_on(max_fix_age_s=30, stall_timeout_s=QUIET_S)
    device.write(capture("sirf3_bu353_glonass_gn.nmea"))
    last = datetime(2014, 5, 26, 8, 14, 19, tzinfo=UTC)  # the capture's last position, sent without a fix
    expected = counted("sirf3_bu353_glonass_gn.nmea")
    # Every line read, and the state that follows the last one (no stall can come after it here).
    wait_for(lambda: gps.summary() == expected and gps.state == DeviceState.NO_FIX, DEADLINE_S,
             what=lambda: f"{expected} and NO_FIX: {gps.summary()}, {gps.status}")
    assert gps.latest_fix().utc == last
    assert gps.reason.startswith("receiver reports no fix")
    assert gps.fix() is None


def test_cold_start_receiver_gives_no_fix_and_no_time(gps_on) -> None:
    device, gps, history = gps_on(stall_timeout_s=QUIET_S)
    device.write(capture("ublox6_coldstart_nofix.nmea"))
    history.wait(DeviceState.NO_FIX, timeout_s=DEADLINE_S)
    assert gps.latest_fix() is None and gps.time() is None


def test_fix_goes_stale(gps_on) -> None:
    device, gps, history = gps_on(max_fix_age_s=0.5, stall_timeout_s=QUIET_S)
    device.write(capture("ublox_m8030_gn.nmea"))
    history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
    # The receiver keeps talking (text only, paced like a receiver) but sends no more positions.
    def talks_without_fix() -> bool:
        device.write(b"$GNTXT,01,01,02,ANTSTATUS=OK*25\r\n")
        return gps.state == DeviceState.NO_FIX

    wait_for(talks_without_fix, DEADLINE_S, interval_s=0.1, what=lambda: f"NO_FIX, still {gps.status}")
    assert gps.reason == "last fix older than 0.5 s (sentences arrive without a position)"
    assert gps.fix() is None and gps.latest_fix() is not None


def test_garbage_and_corrupted_sentences_are_counted_not_fatal(gps_on) -> None:
    device, gps, history = gps_on(stall_timeout_s=QUIET_S)
    device.write(bytes(range(256)) * 3 + b"\r\n" + capture("corrupted.nmea") + capture("ublox_m8030_gn.nmea"))
    # The last sentences carry the fixes: once all three are in, every line before them was counted.
    wait_for(lambda: gps.summary()["fixes"] == 3, DEADLINE_S, what=lambda: f"3 fixes: {gps.summary()}")
    history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
    summary = gps.summary()
    assert summary["bad_checksum"] == 5 and summary["unparsable"] == 8  # corrupted.nmea, line by line
    assert summary["fixes"] == 3


def test_silent_receiver_stalls_then_recovers(gps_on) -> None:
    device, gps, history = gps_on(stall_timeout_s=0.3, max_fix_age_s=30)
    device.write(capture("ublox_m8030_gn.nmea"))
    history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
    stalled = history.wait(DeviceState.STALLED, timeout_s=DEADLINE_S)
    assert "no data for 0.3 s" in stalled.reason

    def talks_again() -> bool:  # the port is reopened between attempts: a receiver keeps sending
        device.write(capture("ublox_m8030_gn.nmea"))
        return any(s.state == DeviceState.RUNNING for s in history.statuses[history.statuses.index(stalled):])

    wait_for(talks_again, DEADLINE_S, interval_s=0.1, what=lambda: f"RUNNING again: {history.statuses[-3:]}")


def test_wrong_baud_rate_looks_like_bytes_without_sentences(gps_on) -> None:
    device, gps, history = gps_on(stall_timeout_s=0.3)

    def stalled_on_noise() -> bool:  # what a receiver at another speed keeps sending
        device.write(b"\xf0\x0f\xfe~x\x80" * 10)
        return any(s.state == DeviceState.STALLED and "wrong baud rate" in s.reason for s in history.statuses)

    wait_for(stalled_on_noise, DEADLINE_S, interval_s=0.05, what=lambda: f"STALLED: {history.statuses}")
    assert gps.summary()["sentences"] == 0 and gps.latest_fix() is None


def test_unplug_and_replug(gps_on) -> None:
    device, gps, history = gps_on(max_fix_age_s=30, stall_timeout_s=QUIET_S)
    device.write(capture("sirf_trig_beidou_bd.nmea"))
    history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
    device.unplug()
    history.wait(DeviceState.DISCONNECTED, timeout_s=DEADLINE_S)
    device.plug()
    history.wait(DeviceState.STARTING, reason="waiting for NMEA", timeout_s=DEADLINE_S)
    device.write(capture("sirf_trig_beidou_bd.nmea"))
    history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
    assert gps.fix().lat == pytest.approx(31.248, abs=1e-3)


def test_fake_receiver_fixes_time_offset_and_faults() -> None:
    gps = open_gps(GpsConfig(port="fake:?lat=31.2304&lon=121.4737&interval_s=0.05&time_offset_s=-3600",
                             stall_timeout_s=0.3, reopen_interval_s=0.05, max_fix_age_s=5, uere_m=3.0))
    seen = []
    gps.on_fix = seen.append
    history = StateHistory(gps)

    def then(action, state: DeviceState) -> None:  # noqa: ANN001
        history.mark()
        action()
        history.wait(state, timeout_s=DEADLINE_S)

    with gps:
        history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
        assert gps.fix().lat == pytest.approx(31.2304, abs=1e-6)
        offset = gps.time().now_utc() - datetime.now(UTC)
        assert offset.total_seconds() == pytest.approx(-3600, abs=1.0)
        then(gps.fake.lose_fix, DeviceState.NO_FIX)
        then(lambda: gps.fake.set_fix(22.5431, 114.0579, hdop=2.0), DeviceState.RUNNING)
        # Fixes after set_fix() carry the new position (one from before it may still have been in flight).
        wait_for(lambda: gps.fix().lat == pytest.approx(22.5431, abs=1e-6), DEADLINE_S, what="the new position")
        assert gps.fix().accuracy_m == 6.0
        assert gps.time().utc.timestamp() - gps.time().wall_s == pytest.approx(-3600, abs=1.0)
        then(gps.fake.go_silent, DeviceState.STALLED)
        then(gps.fake.resume, DeviceState.RUNNING)
        gps.fake.send_garbage()
        then(gps.fake.unplug, DeviceState.DISCONNECTED)
        then(gps.fake.replug, DeviceState.RUNNING)
    assert seen and gps.state == DeviceState.STOPPED


def test_unconfigured_gps_is_off() -> None:
    gps = open_gps(GpsConfig())
    gps.start()
    assert gps.state == DeviceState.OFF and gps.fix() is None and gps.time() is None
    gps.stop()


def test_cli_prints_fixes(invoke, tmp_path) -> None:
    result = invoke("hw", "read", "gps", "--port", "fake:?interval_s=0.05&lat=-33.8568&lon=151.2153",
                    "--count", "3", "--timeout", "120", "--config", str(tmp_path / "absent.toml"))
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
