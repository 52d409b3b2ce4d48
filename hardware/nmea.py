"""NMEA 0183 as pure functions: sentences in, fixes and receiver time out (pynmea2 does the fields).

GGA gives position, quality, satellites and HDOP; RMC gives the date and whether the receiver
vouches for its fix; GSA gives HDOP on receivers that leave it out of GGA; ZDA gives the date.
Talker ids GP, GN, GL, GA, BD/GB are all accepted: only the sentence type matters.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime

import pynmea2

from hardware.reasons import Reason

log = logging.getLogger(__name__)

MAX_SENTENCE_CHARS = 120          # NMEA says 82; some receivers exceed it, nothing sane is longer
DEFAULT_UERE_M = 5.0              # user equivalent range error of a consumer receiver (m)
REAL_FIX_QUALITIES = frozenset({1, 2, 3, 4, 5})  # 6 estimated, 7 manual, 8 simulated: not a position
HALF_DAY = timedelta(hours=12)


def _iso_utc(moment: datetime) -> str:
    """UTC with milliseconds and a 'Z', as every timestamp this system prints."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Fix:
    """A position the receiver vouches for, stamped with the monotonic time it was received."""

    lat: float
    lon: float
    quality: int
    sats: int | None
    hdop: float | None
    utc: datetime | None
    mono_ns: int
    altitude_m: float | None = None
    talker: str = ""
    uere_m: float = DEFAULT_UERE_M

    def age_s(self, now_ns: int | None = None) -> float:
        return ((now_ns if now_ns is not None else time.monotonic_ns()) - self.mono_ns) / 1e9

    @property
    def accuracy_m(self) -> float | None:
        """Approximate 1-sigma horizontal error: HDOP x UERE (None when the receiver gave no HDOP)."""
        return None if self.hdop is None else self.hdop * self.uere_m

    def as_json(self) -> dict:
        return {"lat": round(self.lat, 7), "lon": round(self.lon, 7), "quality": self.quality,
                "sats": self.sats, "hdop": self.hdop, "utc": _iso_utc(self.utc) if self.utc else None}


@dataclass(frozen=True)
class GpsTime:
    """UTC from the receiver and the monotonic time it arrived: an independent clock for a Pi.

    NMEA alone is good to about +/- 0.5 s (sentences leave the receiver after the epoch they
    describe); that is plenty to date punches, not to discipline NTP.
    """

    utc: datetime
    mono_ns: int
    wall_s: float | None = None  # this machine's wall clock (time.time()) when the sentence arrived

    def now_utc(self, now_ns: int | None = None) -> datetime:
        """The current UTC time extrapolated with the monotonic clock."""
        now_ns = now_ns if now_ns is not None else time.monotonic_ns()
        return self.utc + timedelta(microseconds=(now_ns - self.mono_ns) / 1000)

    def age_s(self, now_ns: int | None = None) -> float:
        return ((now_ns if now_ns is not None else time.monotonic_ns()) - self.mono_ns) / 1e9


@dataclass
class NmeaStats:
    sentences: int = 0
    bad_checksum: int = 0
    unparsable: int = 0
    ignored: int = 0
    fixes: int = 0

    @property
    def invalid(self) -> int:
        return self.bad_checksum + self.unparsable


def _number(text: str, kind=float):
    """The field as a number, or None when it is empty or not a number."""
    try:
        return kind(text)
    except (TypeError, ValueError):
        return None


@dataclass
class NmeaTracker:
    """Feed it sentence lines; it returns a Fix whenever one is complete, keeps the receiver's time.

    Receiver time is trusted only when the receiver also vouches for a position (RMC status A or
    GGA quality 1-5): before a fix, u-blox and SiRF receivers print times from their own RTC or
    almanac, which can be wrong by seconds or, after a GPS week rollover, by years.
    """

    stats: NmeaStats = field(default_factory=NmeaStats)
    last_time: GpsTime | None = None
    no_fix: Reason = field(default_factory=lambda: Reason("gps_no_sentence"))
    fix_valid: bool = False  # False once the receiver says it lost the fix (GGA quality 0, RMC V)
    uere_m: float = DEFAULT_UERE_M
    _dated: datetime | None = None
    _gsa_hdop: float | None = None
    _rmc_since_gga: int = 0

    @property
    def no_fix_reason(self) -> str:
        """Why there is no usable position, in English."""
        return self.no_fix.text

    def feed_line(self, line: str, mono_ns: int, wall_s: float | None = None) -> Fix | None:
        """One line as received at ``mono_ns`` (and wall time ``wall_s``); noise before '$' is
        skipped; never raises."""
        start = line.find("$")
        if start < 0:
            if line.strip():
                self.stats.unparsable += 1
            return None
        sentence = line[start:].strip()
        if len(sentence) > MAX_SENTENCE_CHARS:
            self.stats.unparsable += 1
            return None
        try:
            message = pynmea2.parse(sentence, check=True)
        except pynmea2.ChecksumError:
            self.stats.bad_checksum += 1
            return None
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
            self.stats.unparsable += 1
            return None
        self.stats.sentences += 1
        try:
            return self._handle(message, mono_ns, wall_s)
        except (ValueError, TypeError, AttributeError) as exc:
            # A checksummed sentence with a field pynmea2 cannot convert: drop it, keep going.
            log.debug("nmea: cannot use %r: %s", sentence, exc)
            self.stats.unparsable += 1
            return None

    def _handle(self, message, mono_ns: int, wall_s: float | None) -> Fix | None:
        kind = message.sentence_type  # every pynmea2 sentence has one (proprietary: e.g. "SRFTXT")
        if kind == "GGA":
            return self._on_gga(message, mono_ns, wall_s)
        if kind == "RMC":
            return self._on_rmc(message, mono_ns, wall_s)
        if kind == "GSA":
            self._gsa_hdop = _number(message.hdop) or self._gsa_hdop
            if message.mode_fix_type == "1":
                self.no_fix = Reason("gps_gsa_no_fix")
        elif kind == "ZDA" and message.datestamp and message.timestamp:
            self._dated = datetime.combine(message.datestamp, message.timestamp).replace(tzinfo=UTC)
        else:
            self.stats.ignored += 1
        return None

    def _utc_for(self, moment: dtime | None) -> datetime | None:
        """Date a time-of-day with the last known date, handling midnight between sentences."""
        if moment is None or self._dated is None:
            return None
        candidate = datetime.combine(self._dated.date(), moment).replace(tzinfo=UTC)
        if candidate - self._dated < -HALF_DAY:
            candidate += timedelta(days=1)
        elif candidate - self._dated > HALF_DAY:
            candidate -= timedelta(days=1)
        return candidate

    def _on_gga(self, gga, mono_ns: int, wall_s: float | None) -> Fix | None:
        self._rmc_since_gga = 0
        quality = gga.gps_qual or 0
        sats = _number(gga.num_sats, int)
        if quality not in REAL_FIX_QUALITIES or not gga.lat or not gga.lon:
            self.no_fix = (Reason("gps_no_fix", {"sats": sats or 0}) if quality == 0 else
                           Reason("gps_not_measured", {"quality": quality, "sats": sats or 0}))
            self.fix_valid = False
            return None
        utc = self._utc_for(gga.timestamp)
        hdop = _number(gga.horizontal_dil) or self._gsa_hdop
        altitude = gga.altitude if isinstance(gga.altitude, float) else None
        # Built first: a field pynmea2 cannot convert drops the sentence before anything is counted.
        fix = Fix(gga.latitude, gga.longitude, quality, sats, hdop, utc, mono_ns, altitude, gga.talker, self.uere_m)
        if utc is not None:
            self.last_time = GpsTime(utc, mono_ns, wall_s)
        self.stats.fixes += 1
        self.fix_valid = True
        return fix

    def _on_rmc(self, rmc, mono_ns: int, wall_s: float | None) -> Fix | None:
        utc = None
        if rmc.datestamp and rmc.timestamp:
            utc = datetime.combine(rmc.datestamp, rmc.timestamp).replace(tzinfo=UTC)
            self._dated = utc
        if rmc.status != "A":
            self.no_fix = Reason("gps_rmc_no_fix")
            self.fix_valid = False
            return None
        if utc is not None:
            self.last_time = GpsTime(utc, mono_ns, wall_s)
        self._rmc_since_gga += 1
        if self._rmc_since_gga < 2 or not rmc.lat or not rmc.lon:
            return None  # GGA carries the richer fix; RMC gives one only on receivers that send no GGA
        fix = Fix(rmc.latitude, rmc.longitude, 1, None, self._gsa_hdop, utc, mono_ns, None, rmc.talker, self.uere_m)
        self.stats.fixes += 1
        self.fix_valid = True
        return fix


# -- encoders (the fake receiver) -----------------------------------------------------------------
def nmea_sentence(body: str) -> str:
    """'$' + body + '*' + XOR checksum + CR LF."""
    checksum = 0
    for char in body.encode("ascii"):
        checksum ^= char
    return f"${body}*{checksum:02X}\r\n"


def _angle(value: float, degree_digits: int, hemispheres: str) -> tuple[str, str]:
    hemisphere = hemispheres[0] if value >= 0 else hemispheres[1]
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}", hemisphere


def gga_sentence(utc: datetime, lat: float | None, lon: float | None, quality: int, sats: int,
                 hdop: float | None, altitude_m: float = 20.0, talker: str = "GN") -> str:
    clock = utc.strftime("%H%M%S.") + f"{utc.microsecond // 10000:02d}"
    if quality and lat is not None and lon is not None:
        lat_text, ns = _angle(lat, 2, "NS")
        lon_text, ew = _angle(lon, 3, "EW")
        body = (f"{talker}GGA,{clock},{lat_text},{ns},{lon_text},{ew},{quality},{sats:02d},"
                f"{hdop or 99.99:.2f},{altitude_m:.1f},M,0.0,M,,")
    else:
        body = f"{talker}GGA,{clock},,,,,0,{sats:02d},99.99,,,,,,"
    return nmea_sentence(body)


def rmc_sentence(utc: datetime, lat: float | None, lon: float | None, valid: bool, talker: str = "GN") -> str:
    clock = utc.strftime("%H%M%S.") + f"{utc.microsecond // 10000:02d}"
    day = utc.strftime("%d%m%y")
    if valid and lat is not None and lon is not None:
        lat_text, ns = _angle(lat, 2, "NS")
        lon_text, ew = _angle(lon, 3, "EW")
        body = f"{talker}RMC,{clock},A,{lat_text},{ns},{lon_text},{ew},0.0,,{day},,,A"
    else:
        body = f"{talker}RMC,{clock},V,,,,,,,{day},,,N"
    return nmea_sentence(body)


def parse_lines(lines: list[str], start_ns: int = 0, step_ns: int = 0) -> tuple[list[Fix], NmeaTracker]:
    """Run a list of lines through a fresh tracker (for tools and tests)."""
    tracker = NmeaTracker()
    fixes = []
    for index, line in enumerate(lines):
        fix = tracker.feed_line(line, start_ns + index * step_ns)
        if fix is not None:
            fixes.append(fix)
    return fixes, tracker


