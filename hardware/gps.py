"""The GPS receiver device: NMEA over serial, freshest fix, receiver UTC time, and a fake receiver."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from hardware.config import GpsConfig
from hardware.device import DeviceState, DropOldestQueue
from hardware.nmea import Fix, GpsTime, NmeaTracker, gga_sentence, nmea_sentence, rmc_sentence
from hardware.reasons import seconds
from hardware.serialport import FAKE_PREFIX, FakeDevice, FakeLine, SerialDevice

log = logging.getLogger(__name__)

FIX_QUEUE = 16
MAX_LINE_BYTES = 256
FAKE_DEFAULT = {"lat": 31.2304, "lon": 121.4737, "hdop": 0.9, "sats": 9, "fix": 1, "interval_s": 1.0,
                "time_offset_s": 0.0}

FixCallback = Callable[[Fix], None]


class GpsReader(SerialDevice):
    """Reads NMEA from a serial receiver. States: STARTING (port open, no sentence yet), RUNNING
    (fresh fix), NO_FIX (sentences but no fix, or the fix is older than max_fix_age_s), STALLED
    (no valid sentence for stall_timeout_s: the port is reopened), DISCONNECTED (port gone)."""

    kind = "gps"

    def __init__(self, config: GpsConfig, on_fix: FixCallback | None = None, name: str = "gps") -> None:
        self.fake = FakeGps(config.port or "") if (config.port or "").startswith(FAKE_PREFIX) else None
        super().__init__(name, config.port, config.baud, "no_gps", fake=self.fake.line if self.fake else None)
        self.config = config
        self.reopen_interval_s = config.reopen_interval_s
        self.on_fix = on_fix
        self.tracker = NmeaTracker(uere_m=config.uere_m)
        self.fixes: DropOldestQueue[Fix] = DropOldestQueue(FIX_QUEUE)
        self._latest: Fix | None = None
        self._lock = threading.Lock()
        self._line = bytearray()
        self._last_valid_ns = 0
        self._bytes_since_valid = 0

    # -- what the daemon reads ----------------------------------------------------------------
    def latest_fix(self) -> Fix | None:
        """The last fix, however old (check ``fix.age_s()``)."""
        with self._lock:
            return self._latest

    def fix(self, now_ns: int | None = None) -> Fix | None:
        """The last fix if it is younger than max_fix_age_s and the receiver has not since said it
        lost the fix; else None."""
        fix = self.latest_fix()
        if fix is None or not self.tracker.fix_valid or fix.age_s(now_ns) > self.config.max_fix_age_s:
            return None
        return fix

    def time(self) -> GpsTime | None:
        """Receiver UTC (from the last sentence that came with a valid fix) and when it arrived, on
        the monotonic clock and on this machine's wall clock: the offset is ``utc - wall_s``."""
        return self.tracker.last_time

    def read(self, timeout_s: float | None = None) -> Fix | None:
        """The next fix in arrival order, waiting up to ``timeout_s``."""
        return self.fixes.get(timeout_s)

    def summary(self) -> dict:
        stats = self.tracker.stats
        return {"sentences": stats.sentences, "fixes": stats.fixes, "bad_checksum": stats.bad_checksum,
                "unparsable": stats.unparsable, "ignored": stats.ignored}

    # -- the serial side ----------------------------------------------------------------------
    def _on_open(self) -> None:
        self._line.clear()
        self._last_valid_ns = time.monotonic_ns()
        self._bytes_since_valid = 0
        if self.state != DeviceState.STALLED:  # a stalled receiver stays STALLED until it talks again
            self._set_state(DeviceState.STARTING, "gps_waiting", port=self.port_name)

    def _on_bytes(self, data: bytes, now_ns: int) -> None:
        self._bytes_since_valid += len(data)
        for byte in data:
            if byte == 0x0A:
                self._on_line(bytes(self._line), now_ns)
                self._line.clear()
            elif len(self._line) < MAX_LINE_BYTES:
                self._line.append(byte)
            else:
                self._line.clear()
                self.tracker.stats.unparsable += 1

    def _on_line(self, raw: bytes, now_ns: int) -> None:
        before = self.tracker.stats.sentences
        fix = self.tracker.feed_line(raw.decode("ascii", "replace"), now_ns, time.time())
        if self.tracker.stats.sentences > before:
            self._last_valid_ns = now_ns
            self._bytes_since_valid = 0
        if fix is None:
            return
        with self._lock:
            self._latest = fix
        self.fixes.put(fix)
        if self.on_fix is not None:
            try:
                self.on_fix(fix)
            except Exception:  # the daemon's callback must not kill the reader
                log.exception("gps: on_fix callback failed")

    def _on_idle(self, now_ns: int) -> bool:
        silent_s = (now_ns - self._last_valid_ns) / 1e9
        if silent_s >= self.config.stall_timeout_s:
            self._set_state(DeviceState.STALLED, "gps_garbage" if self._bytes_since_valid else "gps_silent",
                            seconds=seconds(self.config.stall_timeout_s), port=self.port_name)
            return False
        if self.tracker.stats.sentences == 0:
            return True
        if self.fix(now_ns) is not None:
            self._set_state(DeviceState.RUNNING, "gps_fixes")
        elif self.tracker.fix_valid and self.latest_fix() is not None:
            # The receiver never said it lost the fix: its positions just stopped coming.
            self._set_state(DeviceState.NO_FIX, "gps_fix_stale", seconds=f"{self.config.max_fix_age_s:g}")
        else:
            self._set_state(DeviceState.NO_FIX, self.tracker.no_fix.code, **self.tracker.no_fix.params)
        return True


class FakeGps(FakeDevice):
    """The receiver behind port `fake:`: emits RMC+GGA+GSA every interval_s for a settable position.

    Options in the port string: `fake:?lat=31.2304&lon=121.4737&hdop=0.9&sats=9&fix=1&interval_s=1
    &time_offset_s=0` (time_offset_s makes the receiver's clock differ from the system clock).
    Tests call set_fix(), lose_fix(), go_silent(), resume(), send_garbage(), unplug(), replug().
    """

    def __init__(self, port: str) -> None:
        values = dict(FAKE_DEFAULT)
        for key, raw in parse_qsl(port.partition("?")[2]):
            if key not in values:
                raise ValueError(f"unknown fake GPS option {key!r} (valid: {', '.join(sorted(values))})")
            values[key] = float(raw)
        self.lat, self.lon = values["lat"], values["lon"]
        self.hdop, self.sats = values["hdop"], int(values["sats"])
        self.has_fix = bool(values["fix"])
        self.interval_s = max(0.01, values["interval_s"])
        self.time_offset = timedelta(seconds=values["time_offset_s"])
        self._next = 0.0
        self.line = FakeLine(source=self._due)

    def set_fix(self, lat: float, lon: float, hdop: float = 0.9, sats: int = 9) -> None:
        self.lat, self.lon, self.hdop, self.sats, self.has_fix = lat, lon, hdop, sats, True

    def lose_fix(self, sats: int = 2) -> None:
        """Indoors: keep talking, no position."""
        self.has_fix, self.sats = False, sats

    def epoch(self, utc: datetime) -> bytes:
        """One second of receiver output for the current state."""
        lat, lon = (self.lat, self.lon) if self.has_fix else (None, None)
        quality = 1 if self.has_fix else 0
        dops = [f"{self.hdop * 1.6:.2f}", f"{self.hdop:.2f}", f"{self.hdop * 1.2:.2f}"]
        gsa = nmea_sentence(",".join(["GNGSA", "A", "3" if self.has_fix else "1", *[""] * 12, *dops]))
        text = rmc_sentence(utc, lat, lon, self.has_fix) + gga_sentence(utc, lat, lon, quality, self.sats,
                                                                         self.hdop) + gsa
        return text.encode("ascii")

    def _due(self, now: float) -> bytes:
        if now < self._next:
            return b""
        self._next = max(self._next + self.interval_s, now)
        return self.epoch(datetime.now(UTC) + self.time_offset)


def open_gps(config: GpsConfig, on_fix: FixCallback | None = None, name: str = "gps") -> GpsReader:
    """The GPS for a [gps] section, not started. Without a port it stays OFF."""
    return GpsReader(config, on_fix, name)
