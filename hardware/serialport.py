"""Serial ports in one place: open (real pyserial or the built-in fake), read, reopen on a schedule.

`SerialDevice` owns the port and its reconnect loop; subclasses only say what to do with bytes.
The fake is a pyserial look-alike picked by the port name `fake:` (as OctoPrint's VIRTUAL
printer): tests and the demo drive it through a `FakeLine`, which survives reopens and can drop
the port, go silent or send garbage.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import serial

from hardware.device import Device, DeviceState
from hardware.reasons import seconds

log = logging.getLogger(__name__)

FAKE_PREFIX = "fake:"
READ_TIMEOUT_S = 0.2     # a read returns at least this often so the loop sees stop and stalls
READ_CHUNK_BYTES = 256


class PortError(Exception):
    """The port cannot be opened or was lost (unplugged, busy, no permission)."""


def describe_serial_error(port: str, exc: BaseException) -> str:
    """A sentence about why a port failed, with the usual cause named."""
    text = str(exc)
    if "No such file" in text or "Errno 2" in text:
        return f"{port} is not there (unplugged, or a different name)"
    if "Permission denied" in text or "Errno 13" in text:
        return f"no permission to open {port} (add the kiosk user to group 'dialout')"
    if "Resource temporarily unavailable" in text or "Could not exclusively lock" in text:
        return f"{port} is in use by another program"
    return f"{port}: {text}"


class FakeLine:
    """The wire of a fake serial device: bytes queued by a test or a generator, plug state."""

    def __init__(self, source: Callable[[float], bytes] | None = None) -> None:
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self._plugged = True
        self._generation = 0
        self._silent = False
        self.source = source  # called on each read with time.monotonic(); returns bytes now due

    def feed(self, data: bytes) -> None:
        """Bytes the device sends."""
        with self._cond:
            self._buffer.extend(data)
            self._cond.notify_all()

    def unplug(self) -> None:
        """Drop the port: open ports fail on their next read, new opens fail until replug()."""
        with self._cond:
            self._plugged = False
            self._generation += 1
            self._buffer.clear()
            self._cond.notify_all()

    def replug(self) -> None:
        with self._cond:
            self._plugged = True
            self._cond.notify_all()

    def go_silent(self) -> None:
        """Keep the port open but stop the generator (a hung receiver)."""
        self._silent = True

    def resume(self) -> None:
        self._silent = False

    def open(self) -> FakeSerialPort:
        with self._cond:
            if not self._plugged:
                raise PortError("fake port is unplugged")
            return FakeSerialPort(self, self._generation)

    def _read(self, generation: int, size: int, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if generation != self._generation or not self._plugged:
                    raise serial.SerialException("fake device disconnected")
                if self.source is not None and not self._silent:
                    self._buffer.extend(self.source(time.monotonic()))
                if self._buffer:
                    data = bytes(self._buffer[:size])
                    del self._buffer[:size]
                    return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                self._cond.wait(min(remaining, 0.05))


class FakeSerialPort:
    """What `FakeLine.open()` returns: the subset of pyserial's Serial that we use."""

    def __init__(self, line: FakeLine, generation: int) -> None:
        self._line = line
        self._generation = generation
        self.is_open = True
        self.timeout = READ_TIMEOUT_S

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.SerialException("fake port is closed")
        return self._line._read(self._generation, size, self.timeout)

    def close(self) -> None:
        self.is_open = False


def open_serial(port: str, baud: int, fake: FakeLine | None = None):
    """Open a real port (exclusive, so two programs never share a reader) or the fake one."""
    if port.startswith(FAKE_PREFIX):
        if fake is None:
            raise PortError("fake port has no line attached")
        return fake.open()
    try:
        return serial.Serial(port, baudrate=baud, timeout=READ_TIMEOUT_S, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(describe_serial_error(port, exc)) from None


class SerialDevice(Device):
    """A device on a serial port: open, read, hand bytes to ``_on_bytes``, reopen when lost.

    Subclasses set ``self.port_name``/``self.baud`` and implement ``_on_open`` (fresh decoder
    state after every (re)open: bytes from before an unplug are never glued to new ones),
    ``_on_bytes(data, now_ns)`` and optionally ``_on_idle(now_ns)`` (called after every read,
    returns False to force a reopen, e.g. when a GPS went silent).
    """

    reopen_interval_s = 3.0

    def __init__(self, name: str, port: str | None, baud: int, off_reason: str,  # a reason code
                 fake: FakeLine | None = None) -> None:
        super().__init__(name, off_reason=None if port else off_reason)
        self.port_name = port or ""
        self.baud = baud
        self.fake_line = fake
        self._port = None
        self._port_lock = threading.Lock()
        self.bytes_read = 0

    def describe(self) -> str:
        return self.port_name or "(none)"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                port = open_serial(self.port_name, self.baud, self.fake_line)
            except PortError as exc:
                self._set_state(DeviceState.DISCONNECTED, "port_unavailable", detail=str(exc),
                                seconds=seconds(self.reopen_interval_s))
            else:
                self._read_until_lost(port)
            if self._stop.wait(self.reopen_interval_s):
                return

    def _read_until_lost(self, port) -> None:
        with self._port_lock:
            self._port = port
        self._on_open()
        try:
            while not self._stop.is_set():
                data = port.read(READ_CHUNK_BYTES)
                now_ns = time.monotonic_ns()
                if data:
                    self.bytes_read += len(data)
                    self._on_bytes(data, now_ns)
                if not self._on_idle(now_ns):
                    break
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # pyserial raises TypeError/AttributeError when the port is closed under a read (stop).
            if not self._stop.is_set():
                self._set_state(DeviceState.DISCONNECTED, "port_lost", port=self.port_name, error=str(exc))
        finally:
            with self._port_lock:
                self._port = None
            try:
                port.close()
            except Exception:  # closing a vanished port may fail; it is gone either way
                pass

    def _interrupt(self) -> None:
        with self._port_lock:
            port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            try:
                port.cancel_read()
            except Exception:  # best effort: the read returns within READ_TIMEOUT_S anyway
                pass

    def _on_open(self) -> None:
        raise NotImplementedError

    def _on_bytes(self, data: bytes, now_ns: int) -> None:
        raise NotImplementedError

    def _on_idle(self, now_ns: int) -> bool:
        return True


class FakeDevice:
    """What every fake serial device lets a test do to its line: raw bytes, noise, silence, unplug."""

    line: FakeLine

    def feed(self, data: bytes) -> None:
        self.line.feed(data)

    def send_garbage(self, count: int = 48) -> None:
        """Line noise: random bytes (an unshielded cable, a wrong baud rate)."""
        self.line.feed(os.urandom(count))

    def go_silent(self) -> None:
        self.line.go_silent()

    def resume(self) -> None:
        self.line.resume()

    def unplug(self) -> None:
        self.line.unplug()

    def replug(self) -> None:
        self.line.replug()
