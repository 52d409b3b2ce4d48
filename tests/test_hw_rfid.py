"""Card readers on real pseudo-terminals: frames, noise, split reads, unplug and replug; the fake."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
from waiting import StateHistory, wait_for, wait_state

from conftest import skip_or_fail
from hardware.config import RfidConfig
from hardware.device import DeviceState
from hardware.rfid import open_rfid
from hardware.rfid_protocols import encode_em4100, encode_wiegand26

DEADLINE_S = 60.0  # an upper bound for a loaded machine: every wait ends as soon as its condition holds


def running(reader) -> None:
    wait_state(reader, DeviceState.RUNNING, timeout_s=DEADLINE_S)


def reads(reader, count: int, timeout_s: float = DEADLINE_S) -> list[str]:
    """The next ``count`` cards read (fails if they do not come)."""
    out: list[str] = []

    def take() -> bool:
        read = reader.read(0.1)
        if read is not None:
            out.append(read.card)
        return len(out) >= count

    wait_for(take, timeout_s, interval_s=0, what=lambda: f"{count} card read(s), got {out}")
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
    for index in range(len(frame)):  # one byte per read: the next goes out once the reader has this one
        device.write(frame[index:index + 1])
        wait_for(lambda n=index + 1: reader.bytes_read == n, DEADLINE_S, what=f"byte {index + 1} read")
    assert reads(reader, 1) == ["0013477100"]


def test_a_held_card_is_one_read(reader_on) -> None:
    device, reader = reader_on(hold_off_s=1.0)
    device.write(encode_em4100(8075634) * 20)
    assert reads(reader, 1) == ["0008075634"]
    wait_for(lambda: reader.summary()["frames"] == 20, DEADLINE_S, what=lambda: f"20 frames: {reader.summary()}")
    assert reader.summary()["held_off"] == 19 and reader.summary()["cards"] == 1
    assert reader.read(0) is None  # the other 19 frames were the same card still held


def test_wiegand_bridge_over_a_pty(reader_on) -> None:
    device, reader = reader_on(protocol="wiegand", card_format="fc_card")
    device.write(b"11110110101101100001001110\r\n")  # as the forum's sketch printed it: parity fails
    device.write((encode_wiegand26(18, 37848) + "\r\n").encode())
    assert reads(reader, 1) == ["018,37848"]
    assert reader.summary()["dropped"] == {"bad even parity": 1}


def test_unplug_then_replug_at_the_same_path(reader_on) -> None:
    device, reader = reader_on()
    history = StateHistory(reader)
    device.write(encode_em4100(8075634)[:7])          # a frame cut by the unplug
    wait_for(lambda: reader.bytes_read == 7, DEADLINE_S, what="the first 7 bytes read")
    device.unplug()
    lost = history.wait(DeviceState.DISCONNECTED, timeout_s=DEADLINE_S)
    assert str(device.path) in lost.reason
    # A reopen fails while the adapter is out: the reader stays disconnected, it does not give up.
    history.wait(DeviceState.DISCONNECTED, reason="is not there", timeout_s=DEADLINE_S)
    assert reader.state == DeviceState.DISCONNECTED and reader.alive
    device.plug()
    running(reader)
    device.write(encode_em4100(1217496))
    assert reads(reader, 1) == ["0001217496"]
    assert reader.summary()["dropped"] == {"truncated frame": 1}


def test_missing_port_is_disconnected_with_a_reason(tmp_path) -> None:
    reader = open_rfid(RfidConfig(port=str(tmp_path / "ttyUSB9"), reopen_interval_s=0.05))
    with reader:
        status = wait_state(reader, DeviceState.DISCONNECTED, timeout_s=DEADLINE_S)
        assert "is not there" in status.reason


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
        wait_state(reader, DeviceState.DISCONNECTED, timeout_s=DEADLINE_S)
        reader.fake.replug()
        running(reader)
        reader.fake.present(1217496)
        assert reads(reader, 1) == ["0001217496"]
    assert [r.card for r in seen] == ["0008075634", "0001217496"]
    # Random line noise makes frames of the wrong length, never a hex frame with a wrong checksum.
    assert reader.summary()["dropped"]["bad checksum"] == 1


def test_fake_reader_scripted_from_config() -> None:
    reader = open_rfid(RfidConfig(port="fake:?cards=8075634,1217496&every_s=0.1&start_s=0&repeats=3",
                                  protocol="line", hold_off_s=0.05))
    with reader:
        assert reads(reader, 2) == ["0008075634", "0001217496"]


def test_hid_reader_reports_a_missing_device_or_a_missing_evdev(tmp_path) -> None:
    reader = open_rfid(RfidConfig(port=str(tmp_path / "event9"), protocol="hid", reopen_interval_s=0.05))
    with reader:
        status = wait_state(reader, DeviceState.DISCONNECTED, DeviceState.FAILED, timeout_s=DEADLINE_S)
    try:
        import evdev  # noqa: F401
    except ImportError:
        assert status.state == DeviceState.FAILED and "pip install evdev" in status.reason
    else:
        assert "cannot open" in status.reason and "event9" in status.reason


# -- keyboard-wedge (HID) readers ---------------------------------------------------------------
# What such a reader sends, as `evtest` shows it for a USB keyboard: for each key a scan code (the
# USB usage, page 7), the key going down, a report; the same going up. Key codes are the kernel's
# (linux/input-event-codes.h). No public capture of a card reader was found (fixtures/rfid/README.md).
EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
SYN_REPORT, MSC_SCAN = 0, 4
KEY_LEFTSHIFT, KEY_ENTER, KEY_SPACE = 42, 28, 57
KEYS = {"1": (2, 0x1E), "2": (3, 0x1F), "3": (4, 0x20), "4": (5, 0x21), "5": (6, 0x22), "6": (7, 0x23),
        "7": (8, 0x24), "8": (9, 0x25), "9": (10, 0x26), "0": (11, 0x27), "A": (30, 0x04), "B": (48, 0x05),
        "C": (46, 0x06), "D": (32, 0x07), "E": (18, 0x08), "F": (33, 0x09), " ": (KEY_SPACE, 0x2C),
        "\n": (KEY_ENTER, 0x28)}
SHIFT_USAGE = 0xE1
INPUT_EVENT = struct.Struct("@llHHi")  # the kernel's struct input_event: timeval, type, code, value


def key_events(text: str, held_repeats: int = 0) -> list[tuple[int, int, int]]:
    """(type, code, value) of a reader typing ``text`` (letters with shift, as hex readers do);
    ``held_repeats`` autorepeat events (value 2) on the first key, as when a key sticks."""
    events: list[tuple[int, int, int]] = []

    def press(code: int, usage: int, value: int) -> None:
        events.extend([(EV_MSC, MSC_SCAN, 0x70000 | usage), (EV_KEY, code, value), (EV_SYN, SYN_REPORT, 0)])

    for index, char in enumerate(text):
        code, usage = KEYS[char]
        shifted = char.isalpha()
        if shifted:
            press(KEY_LEFTSHIFT, SHIFT_USAGE, 1)
        press(code, usage, 1)
        for _ in range(held_repeats if index == 0 else 0):
            events.extend([(EV_KEY, code, 2), (EV_SYN, SYN_REPORT, 0)])
        press(code, usage, 0)
        if shifted:
            press(KEY_LEFTSHIFT, SHIFT_USAGE, 0)
    return events


def input_event_records(events: list[tuple[int, int, int]], start_us: int = 1_700_000_000_000_000) -> bytes:
    """The events as the kernel hands them to a reader of /dev/input/eventN: struct input_event records."""
    step_us = 4000  # a reader types about 250 keys a second
    return b"".join(INPUT_EVENT.pack((start_us + i * step_us) // 1_000_000, (start_us + i * step_us) % 1_000_000,
                                     *event) for i, event in enumerate(events))


def require_evdev():  # noqa: ANN201
    try:
        import evdev
    except ImportError:
        skip_or_fail("evdev is not installed: pip install -c constraints.txt -e '.[dev]'")
    return evdev


@pytest.fixture
def event_fifo(tmp_path, monkeypatch):
    """An event device node that is a named pipe: the reader opens it through evdev's own InputDevice,
    whose C reader parses the struct input_event records the test writes, as from /dev/input/eventN.
    A pipe has no device ioctls, so only those are left out: the name/capability queries at open, and
    EVIOCGRAB (grabbing is the kernel's job, tested with /dev/uinput below where it exists)."""
    evdev = require_evdev()

    class PipeInputDevice(evdev.InputDevice):
        def __init__(self, dev) -> None:  # noqa: ANN001
            self.path = os.fspath(dev)
            self.fd = os.open(dev, os.O_RDONLY | os.O_NONBLOCK)
            self.name = "card reader on a pipe"

        def grab(self) -> None:
            pass

        def ungrab(self) -> None:
            pass

    monkeypatch.setattr(evdev, "InputDevice", PipeInputDevice)
    path = tmp_path / "usb-reader-event-kbd"
    os.mkfifo(path)
    return path


def test_hid_reader_decodes_real_input_event_records(event_fifo) -> None:
    reader = open_rfid(RfidConfig(port=str(event_fifo), protocol="hid", line_format="dec", hold_off_s=0))
    history = StateHistory(reader)
    with reader:
        running(reader)
        assert "keyboard reader 'card reader on a pipe'" in reader.reason
        writer = os.open(event_fifo, os.O_WRONLY)
        try:
            lines = key_events("0008075634\n", held_repeats=3) + key_events("12 AB\n") + key_events("0001217496\n")
            records = input_event_records(lines)
            assert len(records) == INPUT_EVENT.size * len(lines)
            for start in range(0, len(records), 7 * INPUT_EVENT.size):  # in bursts, as the kernel delivers them
                os.write(writer, records[start:start + 7 * INPUT_EVENT.size])
            assert reads(reader, 2) == ["0008075634", "0001217496"]
            summary = reader.summary()
            assert summary["frames"] == 2 and summary["dropped"] == {"not a dec card number": 1}
        finally:
            reader.stop()  # before the writer goes: at end of file a pipe reads as always ready
            os.close(writer)
    assert [s.state for s in history.statuses] == [DeviceState.STARTING, DeviceState.RUNNING, DeviceState.STOPPED]


def test_hid_reader_of_hex_numbers_types_them_with_shift(event_fifo) -> None:
    reader = open_rfid(RfidConfig(port=str(event_fifo), protocol="hid", line_format="hex", hold_off_s=0))
    with reader:
        running(reader)
        writer = os.open(event_fifo, os.O_WRONLY)
        try:
            os.write(writer, input_event_records(key_events("6F007B3972\n")))
            assert reads(reader, 1) == ["0008075634"]  # the EM4100 id's low 32 bits, as printed on the card
        finally:
            reader.stop()
            os.close(writer)


@pytest.mark.skipif(not os.path.exists("/dev/uinput"), reason="needs /dev/uinput for a virtual keyboard "
                    "(`modprobe uinput` as root); the same reader is tested on real event records above")
def test_hid_reader_with_a_virtual_keyboard() -> None:
    evdev = require_evdev()
    from evdev import ecodes
    keyboard = evdev.UInput({ecodes.EV_KEY: list(range(1, 120))}, name="test-rfid-kbd")
    try:
        reader = open_rfid(RfidConfig(port=keyboard.device, protocol="hid"))
        with reader:
            running(reader)
            assert "test-rfid-kbd" in reader.reason
            for event_type, code, value in key_events("0008075634\n"):
                keyboard.write(event_type, code, value)
            assert reads(reader, 1) == ["0008075634"]
            assert reader.summary()["frames"] == 1
    finally:
        keyboard.close()


def test_cli_reads_cards_from_a_pty(serial_pty) -> None:
    device = serial_pty()
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "hw", "read", "rfid", "--port", str(device.path),
                             "--count", "2", "--timeout", "120", "--set", "rfid.hold_off_s=0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KIOSK_CONFIG": str(device.path.parent / "none.toml")})
    garbage = b"\x02ZZZZ\x03"  # between any two different cards, whatever moment the port opens
    cards = [encode_em4100(8075634, 0x6F), garbage, encode_em4100(1217496, 1), garbage]

    def presented_until_done() -> bool:  # the reader flushes its input on open: keep presenting, as a person would
        for frame in cards:
            device.write(frame)
        return proc.poll() is not None

    wait_for(presented_until_done, 120, interval_s=0.2, what="`kiosk hw read rfid` to read two cards and exit")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = sorted((json.loads(line) for line in out.splitlines()), key=lambda read: read["card"])
    assert lines == [{"card": "0001217496", "protocol": "em4100", "raw": "01001293D858"},
                     {"card": "0008075634", "protocol": "em4100", "raw": "6F007B39725F"}]
    assert "frame(s) dropped" in err and "wrong frame length" in err


def test_cli_without_a_reader_explains(invoke, kiosk_home) -> None:
    result = invoke("hw", "read", "rfid", "--config", str(kiosk_home))
    assert result.exit_code == 1
    assert "no card reader configured" in result.output
