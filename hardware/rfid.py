"""Card readers: serial (em4100, line, wiegand) and keyboard-wedge (hid, via evdev), plus a fake."""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from hardware.config import RfidConfig
from hardware.device import Device, DeviceState, DropOldestQueue
from hardware.reasons import seconds
from hardware.rfid_protocols import (
    CardRead,
    DecodeStats,
    FrameError,
    HoldOff,
    KeyLineAssembler,
    encode_em4100,
    encode_wiegand26,
    format_card,
    make_decoder,
    parse_number_line,
)
from hardware.serialport import FAKE_PREFIX, FakeDevice, FakeLine, SerialDevice

log = logging.getLogger(__name__)

READ_QUEUE_CARDS = 32
EV_KEY = 1
HID_POLL_S = 0.2

CardCallback = Callable[[CardRead], None]


class _CardSink:
    """Hold-off, queue and callback shared by the serial and the keyboard readers."""

    def __init__(self, config: RfidConfig, on_card: CardCallback | None) -> None:
        self.config = config
        self.reads: DropOldestQueue[CardRead] = DropOldestQueue(READ_QUEUE_CARDS)
        self.on_card = on_card
        self.hold_off = HoldOff(config.hold_off_s)
        self.cards = 0

    def read(self, timeout_s: float | None = None) -> CardRead | None:
        """The next card presentation, waiting up to ``timeout_s``; None if none came."""
        return self.reads.get(timeout_s)

    def _emit(self, decoded, now_ns: int) -> None:
        card = format_card(decoded, self.config.card_format)
        if not self.hold_off.accept(card, now_ns):
            return
        read = CardRead(card, decoded.protocol, decoded.raw, now_ns)
        self.cards += 1
        self.reads.put(read)
        if self.on_card is not None:
            try:
                self.on_card(read)
            except Exception:  # the daemon's callback must not kill the reader
                log.exception("rfid: on_card callback failed")


class RfidReader(_CardSink, SerialDevice):
    """A serial card reader. Reads bytes in one place, decodes with the pure protocol parsers.

    States: RUNNING while the port is open (readers are silent without a card, so silence is
    normal), DISCONNECTED while the port is missing (reopened every ``reopen_interval_s``).
    """

    kind = "rfid"

    def __init__(self, config: RfidConfig, on_card: CardCallback | None = None, name: str = "rfid") -> None:
        self.fake = FakeRfid(config) if (config.port or "").startswith(FAKE_PREFIX) else None
        _CardSink.__init__(self, config, on_card)
        SerialDevice.__init__(self, name, config.port, config.baud, "no_reader",
                              fake=self.fake.line if self.fake else None)
        self.reopen_interval_s = config.reopen_interval_s
        self.decoder = make_decoder(config.protocol, config.line_format)

    @property
    def stats(self) -> DecodeStats:
        return self.decoder.stats

    def summary(self) -> dict:
        """Counters for health reports and `kiosk hw read`."""
        stats = self.decoder.stats
        return {"cards": self.cards, "frames": stats.frames, "dropped": dict(stats.dropped),
                "held_off": self.hold_off.suppressed, "noise_bytes": stats.noise_bytes}

    def _on_open(self) -> None:
        self.decoder.reset()
        self._set_state(DeviceState.RUNNING, "reader_listening", port=self.port_name, protocol=self.config.protocol,
                        baud=self.baud)

    def _on_bytes(self, data: bytes, now_ns: int) -> None:
        for decoded in self.decoder.feed(data):
            self._emit(decoded, now_ns)


class HidReader(_CardSink, Device):
    """A USB reader that types the card number as a keyboard, read through evdev (grabbed, so the
    digits never reach the kiosk's browser)."""

    kind = "rfid"

    def __init__(self, config: RfidConfig, on_card: CardCallback | None = None, name: str = "rfid") -> None:
        _CardSink.__init__(self, config, on_card)
        Device.__init__(self, name, off_reason=None if config.port else "no_reader")
        self.port_name = config.port or ""
        self.stats = DecodeStats()
        self.fake = None

    def describe(self) -> str:
        return self.port_name or "(none)"

    def summary(self) -> dict:
        return {"cards": self.cards, "frames": self.stats.frames, "dropped": dict(self.stats.dropped),
                "held_off": self.hold_off.suppressed, "noise_bytes": 0}

    def _loop(self) -> None:
        try:
            import evdev
        except ImportError:
            self._set_state(DeviceState.FAILED, "evdev_missing")
            return
        while not self._stop.is_set():
            try:
                device = evdev.InputDevice(self.port_name)
                device.grab()
            except OSError as exc:
                self._set_state(DeviceState.DISCONNECTED, "port_unavailable",
                                detail=f"cannot open {self.port_name}: {exc.strerror or exc}",
                                seconds=seconds(self.config.reopen_interval_s))
            else:
                self._read_keys(device)
            if self._stop.wait(self.config.reopen_interval_s):
                return

    def _read_keys(self, device) -> None:
        self._set_state(DeviceState.RUNNING, "keyboard_listening", port=self.port_name, name=device.name)
        keys = KeyLineAssembler()
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([device.fd], [], [], HID_POLL_S)
                if not ready:
                    continue
                for event in device.read():
                    if event.type == EV_KEY:
                        self._on_key(keys, event.code, event.value)
        except OSError as exc:
            self._set_state(DeviceState.DISCONNECTED, "port_lost", port=self.port_name, error=exc.strerror or str(exc))
        finally:
            try:
                device.ungrab()
            except OSError:
                pass
            device.close()

    def _on_key(self, keys: KeyLineAssembler, code: int, value: int) -> None:
        line = keys.feed(code, value)
        if line is None:
            return
        try:
            decoded = parse_number_line(line, self.config.line_format)
        except FrameError as exc:
            self.stats.drop(exc.reason)
            return
        self.stats.frames += 1
        self._emit(decoded, time.monotonic_ns())


class FakeRfid(FakeDevice):
    """The card reader behind port `fake:`. Tests call its methods; the config may script it:
    `fake:?cards=0008075634,0001217496&every_s=2&start_s=1&repeats=3` presents each card in turn
    (repeats = how many frames per presentation, as a held card gives)."""

    def __init__(self, config: RfidConfig) -> None:
        self.config = config
        options = dict(parse_qsl((config.port or "").partition("?")[2]))
        self._script = [int(c) for c in options.get("cards", "").split(",") if c.strip()]
        self._every_s = float(options.get("every_s", 2.0))
        self._repeats = max(1, int(options.get("repeats", 1)))
        self._next_at: float | None = float(options.get("start_s", 0.5)) if self._script else None
        self._started: float | None = None
        self._index = 0
        self.line = FakeLine(source=self._due if self._script else None)

    def frame(self, card_number: int) -> bytes:
        """The bytes this reader's protocol sends for a card number."""
        protocol = self.config.protocol
        if protocol == "em4100":
            return encode_em4100(card_number)
        if protocol == "wiegand":
            return (encode_wiegand26(card_number >> 16 & 0xFF, card_number & 0xFFFF) + "\r\n").encode()
        text = f"{card_number:010d}" if self.config.line_format == "dec" else f"{card_number:010X}"
        return (text + "\r\n").encode()

    def present(self, card_number: int, repeats: int = 1) -> None:
        """Hold a card on the reader for ``repeats`` frames."""
        self.line.feed(self.frame(card_number) * repeats)

    def send_bad_checksum(self, card_number: int) -> None:
        """A frame whose checksum (em4100) or parity (wiegand) is wrong; 'line' has none to break."""
        frame = bytearray(self.frame(card_number))
        index = 12 if self.config.protocol == "em4100" else 0
        frame[index] = ord("0") if frame[index] != ord("0") else ord("1")
        self.line.feed(bytes(frame))

    def _due(self, now: float) -> bytes:
        if self._started is None:
            self._started = now
        if self._next_at is None or now - self._started < self._next_at:
            return b""
        card = self._script[self._index % len(self._script)]
        self._index += 1
        self._next_at += self._every_s
        return self.frame(card) * self._repeats


def open_rfid(config: RfidConfig, on_card: CardCallback | None = None, name: str = "rfid") -> RfidReader | HidReader:
    """The reader for an [rfid] section, not started. Without a port it stays OFF."""
    if config.protocol == "hid" and not (config.port or "").startswith(FAKE_PREFIX):
        return HidReader(config, on_card, name)
    return RfidReader(config, on_card, name)
