"""Card readers on real pseudo-terminals: frames, noise, split reads, unplug and replug; the fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from hardware.config import RfidConfig
from hardware.device import DeviceState
from hardware.rfid import open_rfid
from hardware.rfid_protocols import encode_em4100, encode_wiegand26

DEADLINE_S = 5.0


def running(reader) -> None:
    assert reader.wait_for(lambda s: s.state == DeviceState.RUNNING, DEADLINE_S), reader.status


def reads(reader, count: int, timeout_s: float = DEADLINE_S) -> list[str]:
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        read = reader.read(0.1)
        if read is not None:
            out.append(read.card)
    return out


@pytest.fixture
def reader_on(serial_pty):
    started = []

    def _open(**settings):
        device = serial_pty()
        config = RfidConfig(port=str(device.path), reopen_interval_s=0.05, **settings)
        reader = open_rfid(config)
        reader.start()
        started.append(reader)
        running(reader)
        return device, reader

    yield _open
    for reader in started:
        reader.stop()


def test_em4100_frames_noise_and_bad_checksums_over_a_pty(reader_on) -> None:
    device, reader = reader_on(hold_off_s=0)
    bad = bytearray(encode_em4100(1217485, 1))
    bad[12] ^= 0x01
    device.write(b"\xff\x00garbage" + encode_em4100(8075634, 0x6F) + bytes(bad) + b"\r\n" + encode_em4100(1217496, 1))
    assert reads(reader, 2) == ["0008075634", "0001217496"]
    summary = reader.summary()
    assert summary["dropped"] == {"bad checksum": 1}
    assert summary["noise_bytes"] == 11


def test_bytes_split_across_reads(reader_on) -> None:
    device, reader = reader_on()
    frame = encode_em4100(13477100)
    for index in range(len(frame)):
        device.write(frame[index:index + 1])
        time.sleep(0.002)
    assert reads(reader, 1) == ["0013477100"]


def test_a_held_card_is_one_read(reader_on) -> None:
    device, reader = reader_on(hold_off_s=1.0)
    device.write(encode_em4100(8075634) * 20)
    assert reads(reader, 1) == ["0008075634"]
    assert reads(reader, 1, timeout_s=0.3) == []
    assert reader.summary()["held_off"] == 19


def test_wiegand_bridge_over_a_pty(reader_on) -> None:
    device, reader = reader_on(protocol="wiegand", card_format="fc_card")
    device.write(b"11110110101101100001001110\r\n")  # as the forum's sketch printed it: parity fails
    device.write((encode_wiegand26(18, 37848) + "\r\n").encode())
    assert reads(reader, 1) == ["018,37848"]
    assert reader.summary()["dropped"] == {"bad even parity": 1}


def test_unplug_then_replug_at_the_same_path(reader_on) -> None:
    device, reader = reader_on()
    device.write(encode_em4100(8075634)[:7])          # a frame cut by the unplug
    deadline = time.monotonic() + DEADLINE_S
    while reader.bytes_read < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    device.unplug()
    assert reader.wait_for(lambda s: s.state == DeviceState.DISCONNECTED, DEADLINE_S), reader.status
    assert str(device.path) in reader.reason
    time.sleep(0.2)                                    # several reopen attempts fail meanwhile
    assert reader.state == DeviceState.DISCONNECTED
    device.plug()
    running(reader)
    device.write(encode_em4100(1217496))
    assert reads(reader, 1) == ["0001217496"]
    assert reader.summary()["dropped"] == {"truncated frame": 1}


def test_missing_port_is_disconnected_with_a_reason(tmp_path) -> None:
    reader = open_rfid(RfidConfig(port=str(tmp_path / "ttyUSB9"), reopen_interval_s=0.05))
    with reader:
        assert reader.wait_for(lambda s: s.state == DeviceState.DISCONNECTED, DEADLINE_S)
        assert "is not there" in reader.reason


def test_unconfigured_reader_is_off() -> None:
    reader = open_rfid(RfidConfig())
    reader.start()
    assert reader.state == DeviceState.OFF and not reader.configured
    assert reader.read(0.01) is None
    reader.stop()


def test_fake_reader_can_be_driven_and_can_misbehave() -> None:
    seen = []
    reader = open_rfid(RfidConfig(port="fake:", reopen_interval_s=0.05, hold_off_s=0.5), on_card=seen.append)
    with reader:
        running(reader)
        reader.fake.send_garbage(200)
        reader.fake.send_bad_checksum(42)
        reader.fake.present(8075634, repeats=10)
        assert reads(reader, 1) == ["0008075634"]
        reader.fake.unplug()
        assert reader.wait_for(lambda s: s.state == DeviceState.DISCONNECTED, DEADLINE_S)
        reader.fake.replug()
        running(reader)
        reader.fake.present(1217496)
        assert reads(reader, 1) == ["0001217496"]
    assert [r.card for r in seen] == ["0008075634", "0001217496"]
    assert reader.summary()["dropped"].get("bad checksum", 0) >= 1


def test_fake_reader_scripted_from_config() -> None:
    reader = open_rfid(RfidConfig(port="fake:?cards=8075634,1217496&every_s=0.1&start_s=0&repeats=3",
                                  protocol="line", hold_off_s=0.05))
    with reader:
        assert reads(reader, 2) == ["0008075634", "0001217496"]


def test_hid_reader_reports_a_missing_device_or_a_missing_evdev(tmp_path) -> None:
    reader = open_rfid(RfidConfig(port=str(tmp_path / "event9"), protocol="hid", reopen_interval_s=0.05))
    with reader:
        assert reader.wait_for(lambda s: s.state in (DeviceState.DISCONNECTED, DeviceState.FAILED), DEADLINE_S)
        status = reader.status
    try:
        import evdev  # noqa: F401
    except ImportError:
        assert status.state == DeviceState.FAILED and "pip install evdev" in status.reason
    else:
        assert "cannot open" in status.reason and "event9" in status.reason


@pytest.mark.skipif(not os.path.exists("/dev/uinput"), reason="needs /dev/uinput for a virtual keyboard")
def test_hid_reader_with_a_virtual_keyboard() -> None:
    evdev = pytest.importorskip("evdev")
    from evdev import ecodes
    keyboard = evdev.UInput({ecodes.EV_KEY: list(range(1, 120))}, name="test-rfid-kbd")
    try:
        reader = open_rfid(RfidConfig(port=keyboard.device, protocol="hid"))
        with reader:
            running(reader)
            for code in (11, 11, 11, 9, 11, 8, 6, 7, 4, 5, 28):
                keyboard.write(ecodes.EV_KEY, code, 1)
                keyboard.write(ecodes.EV_KEY, code, 0)
                keyboard.syn()
            assert reads(reader, 1) == ["0008075634"]
    finally:
        keyboard.close()


def test_cli_reads_cards_from_a_pty(serial_pty) -> None:
    device = serial_pty()
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "hw", "read", "rfid", "--port", str(device.path),
                             "--count", "2", "--timeout", "20", "--set", "rfid.hold_off_s=0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KIOSK_CONFIG": str(device.path.parent / "none.toml")})
    deadline = time.monotonic() + 20
    garbage = b"\x02ZZZZ\x03"  # between any two different cards, whatever moment the port opens
    cards = [encode_em4100(8075634, 0x6F), garbage, encode_em4100(1217496, 1), garbage]
    while proc.poll() is None and time.monotonic() < deadline:
        for frame in cards:  # the reader flushes its input on open, so keep presenting until it exits
            device.write(frame)
        time.sleep(0.2)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = sorted((json.loads(line) for line in out.splitlines()), key=lambda read: read["card"])
    assert lines == [{"card": "0001217496", "protocol": "em4100", "raw": "01001293D858"},
                     {"card": "0008075634", "protocol": "em4100", "raw": "6F007B39725F"}]
    assert "frame(s) dropped" in err and "wrong frame length" in err


def test_cli_without_a_reader_explains(invoke, kiosk_home) -> None:
    result = invoke("hw", "read", "rfid", "--config", str(kiosk_home))
    assert result.exit_code == 1
    assert "no card reader configured" in result.output
