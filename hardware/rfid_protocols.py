"""Card-reader protocols as pure functions: decode frames, check them, format canonical card ids.

Bytes come in from `hardware.rfid` in arbitrary pieces; the incremental decoders here buffer them,
find frame boundaries and hand each complete frame to a pure parser. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

STX, ETX = 0x02, 0x03
EM4100_PAYLOAD_CHARS = 12          # 10 hex data + 2 hex checksum
MAX_LINE_BYTES = 64                # longer lines are noise, not card numbers
HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
CardFormat = Literal["dec10", "hex10", "fc_card"]


class FrameError(ValueError):
    """A frame that must be dropped; ``reason`` is a short counter key ('bad checksum'...)."""

    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(f"{reason}: {raw!r}")
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True)
class Decoded:
    """A valid frame: the card number as printed on the card (32 bits at most), and its parts.

    ``facility`` and ``number`` are the Wiegand view (for EM4100: bits 16-23 and 0-15 of the
    card number, the 'facility,number' some cards print).
    """

    protocol: str
    raw: str
    card_number: int
    facility: int
    number: int
    full_value: int
    full_digits: int = 10


@dataclass(frozen=True)
class CardRead:
    """One card presentation as the daemon sees it."""

    card: str          # canonical id in the configured card_format
    protocol: str
    raw: str           # the frame as received (printable)
    mono_ns: int

    def as_json(self) -> dict:
        return {"card": self.card, "protocol": self.protocol, "raw": self.raw}


def _wiegand_view(card_number: int) -> tuple[int, int]:
    return (card_number >> 16) & 0xFF, card_number & 0xFFFF


def parse_em4100_payload(payload: bytes) -> Decoded:
    """The 12 characters between STX and ETX: 10 hex data (version byte + 32-bit card) + XOR checksum."""
    raw = payload.decode("ascii", "replace")
    if len(payload) != EM4100_PAYLOAD_CHARS:
        raise FrameError("wrong frame length", raw)
    if not all(b in HEX_DIGITS for b in payload):
        raise FrameError("non-hex character", raw)
    data = bytes.fromhex(raw)
    checksum = 0
    for byte in data[:5]:
        checksum ^= byte
    if checksum != data[5]:
        raise FrameError("bad checksum", raw)
    value = int.from_bytes(data[:5], "big")
    card = value & 0xFFFFFFFF  # the version/customer byte is not part of the printed number
    return Decoded("em4100", raw, card, *_wiegand_view(card), full_value=value)


def parse_wiegand_bits(text: str) -> Decoded:
    """A Wiegand-26 or -34 frame as a string of bits, both parity bits checked.

    26: even parity over bits 0-12, 8-bit facility, 16-bit number, odd parity over bits 13-25.
    34: even parity over bits 0-16, 16-bit facility, 16-bit number, odd parity over bits 17-33.
    """
    bits = "".join(text.split())
    if not bits or set(bits) - {"0", "1"}:
        raise FrameError("not a bit string", text)
    if len(bits) not in (26, 34):
        raise FrameError("wrong bit count", text)
    half = len(bits) // 2
    if bits[:half].count("1") % 2 != 0:
        raise FrameError("bad even parity", bits)
    if bits[half:].count("1") % 2 != 1:
        raise FrameError("bad odd parity", bits)
    data = int(bits[1:-1], 2)  # 24 or 32 bits: the facility is all of them above the 16-bit number
    return Decoded(f"wiegand{len(bits)}", bits, data, data >> 16, data & 0xFFFF, full_value=data)


def parse_number_line(text: str, line_format: str) -> Decoded:
    """A card number printed as text (decimal or hex digits) by a 'line' or keyboard reader."""
    digits = text.strip()
    pattern = r"[0-9]{1,20}" if line_format == "dec" else r"[0-9A-Fa-f]{1,16}"
    if not re.fullmatch(pattern, digits):
        raise FrameError(f"not a {line_format} card number", digits)
    value = int(digits, 10 if line_format == "dec" else 16)
    # A 10-hex-digit line is an EM4100 id with its version byte; the card shows the low 32 bits.
    card = value & 0xFFFFFFFF if line_format == "hex" and len(digits) == 10 else value
    return Decoded("line", digits, card, *_wiegand_view(card & 0xFFFFFFFF), full_value=value,
                   full_digits=max(10, len(digits)))


def format_card(decoded: Decoded, card_format: CardFormat) -> str:
    """The canonical card id: dec10 '0008075634', hex10 '6F007B3972', fc_card '123,14706'."""
    if card_format == "dec10":
        return f"{decoded.card_number:0{decoded.full_digits}d}"
    if card_format == "hex10":
        return f"{decoded.full_value:010X}"
    return f"{decoded.facility:03d},{decoded.number:05d}"


ANY_CARD_TEXT = ("the decimal number printed on the card (e.g. 0008075634), its 10 hex digits (e.g. 6F007B3972; "
                 "0x... for fewer), or facility,number (e.g. 123,14706)")
# hex10 keeps the EM4100 version byte, which neither the printed decimal nor facility,number carries.
CARD_TEXT_FORMS: dict[str, str] = {
    "dec10": ANY_CARD_TEXT, "fc_card": ANY_CARD_TEXT,
    "hex10": "the card's 10 hex digits as the reader shows them (e.g. 6F007B3972)",
}
CARD_TEXT_MIN_DIGITS = 4
CARD_TEXT_SEPARATORS = re.compile(r"[\s:\-]")
HEX10 = re.compile(r"[0-9A-Fa-f]{10}")


def parse_card_text(text: str, card_format: CardFormat) -> Decoded:
    """A card number as a person types it or a roster lists it, read the way a reader reads a card.

    Decimal digits are the number printed on most cards; hex digits (any A-F, or a 0x prefix) are
    the EM4100 id, its version byte dropped as the readers drop it; 'facility,number' is the Wiegand
    form. hex10 takes only the ten hex digits a reader reports (CARD_TEXT_FORMS says why). Every
    canonical id reads back as itself.
    """
    cleaned = CARD_TEXT_SEPARATORS.sub("", text or "")
    if card_format == "hex10":
        if not HEX10.fullmatch(cleaned):
            raise FrameError("not 10 hex digits", text)
        return parse_number_line(cleaned, "hex")
    if "," in cleaned:
        facility, _, number = cleaned.partition(",")
        if not (facility.isdigit() and number.isdigit()) or int(facility) > 0xFFFF or int(number) > 0xFFFF:
            raise FrameError("not facility,number", text)
        card = int(facility) << 16 | int(number)
        return Decoded("typed", cleaned, card, int(facility), int(number), full_value=card)
    hexed = cleaned[2:] if cleaned[:2].lower() == "0x" else (None if cleaned.isdigit() else cleaned)
    digits = cleaned if hexed is None else hexed
    if len(digits) < CARD_TEXT_MIN_DIGITS:
        raise FrameError("too few digits", text)
    return parse_number_line(digits, "dec" if hexed is None else "hex")


def canonical_card(text: str, card_format: CardFormat) -> str:
    """The stored id of a card given as text: the same id a reader reports for that card (FrameError
    when the text is not one of the CARD_TEXT_FORMS of ``card_format``)."""
    return format_card(parse_card_text(text, card_format), card_format)


# -- encoders (used by the fakes and the tests) -------------------------------------------------
def encode_em4100(card_number: int, version: int = 0) -> bytes:
    """An RDM6300 frame for a card: STX, 10 hex, XOR checksum, ETX."""
    data = ((version & 0xFF) << 32 | (card_number & 0xFFFFFFFF)).to_bytes(5, "big")
    checksum = 0
    for byte in data:
        checksum ^= byte
    return bytes([STX]) + (data.hex().upper() + f"{checksum:02X}").encode() + bytes([ETX])


def encode_wiegand26(facility: int, number: int) -> str:
    """The 26 bits a Wiegand-26 reader sends for facility (0-255) and number (0-65535)."""
    data = f"{facility & 0xFF:08b}{number & 0xFFFF:016b}"
    even = str(data[:12].count("1") % 2)
    odd = str(1 - data[12:].count("1") % 2)
    return even + data + odd


# -- incremental decoders -------------------------------------------------------------------------
@dataclass
class DecodeStats:
    """What a decoder saw: good frames, dropped frames by reason, and noise bytes between frames."""

    frames: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    noise_bytes: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


class Em4100Decoder:
    """Finds STX ... ETX frames in a byte stream; drops bad ones, counts noise, never raises."""

    def __init__(self) -> None:
        self.stats = DecodeStats()
        self._frame: bytearray | None = None

    def feed(self, data: bytes) -> list[Decoded]:
        out: list[Decoded] = []
        for byte in data:
            if byte == STX:
                if self._frame is not None:
                    self.stats.drop("truncated frame")
                self._frame = bytearray()
            elif self._frame is None:
                self.stats.noise_bytes += 1
            elif byte == ETX:
                self._finish(bytes(self._frame), out)
                self._frame = None
            else:
                self._frame.append(byte)
                if len(self._frame) > EM4100_PAYLOAD_CHARS:
                    self.stats.drop("frame too long")
                    self._frame = None
        return out

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened: its tail will never come)."""
        if self._frame:
            self.stats.drop("truncated frame")
        self._frame = None

    def _finish(self, payload: bytes, out: list[Decoded]) -> None:
        try:
            out.append(parse_em4100_payload(payload))
            self.stats.frames += 1
        except FrameError as exc:
            self.stats.drop(exc.reason)


class LineDecoder:
    """Splits a byte stream into CR/LF-terminated lines and parses each with ``parse``."""

    def __init__(self, parse) -> None:
        self.stats = DecodeStats()
        self._parse = parse
        self._line = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[Decoded]:
        out: list[Decoded] = []
        for byte in data:
            if byte in (0x0A, 0x0D):
                self._finish(out)
            elif self._overlong:
                continue
            else:
                self._line.append(byte)
                if len(self._line) > MAX_LINE_BYTES:
                    self.stats.drop("line too long")
                    self._line.clear()
                    self._overlong = True
        return out

    def reset(self) -> None:
        """Forget a partial line (the port was reopened: its tail will never come)."""
        if self._line.strip():
            self.stats.drop("truncated line")
        self._line.clear()
        self._overlong = False

    def _finish(self, out: list[Decoded]) -> None:
        line, self._line, self._overlong = bytes(self._line), bytearray(), False
        text = line.decode("ascii", "replace").strip()
        if not text:
            return
        try:
            out.append(self._parse(text))
            self.stats.frames += 1
        except FrameError as exc:
            self.stats.drop(exc.reason)


def make_decoder(protocol: str, line_format: str = "dec"):
    """The incremental decoder for a serial protocol (em4100, line, wiegand)."""
    if protocol == "em4100":
        return Em4100Decoder()
    if protocol == "wiegand":
        return LineDecoder(parse_wiegand_bits)
    if protocol in ("line", "hid"):
        return LineDecoder(lambda text: parse_number_line(text, line_format))
    raise ValueError(f"unknown card reader protocol {protocol!r}")


# Linux input key codes (linux/input-event-codes.h) a keyboard-wedge reader types.
KEY_CHARS = {2: "1", 3: "2", 4: "3", 5: "4", 6: "5", 7: "6", 8: "7", 9: "8", 10: "9", 11: "0",
             30: "A", 48: "B", 46: "C", 32: "D", 18: "E", 33: "F",
             79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6", 71: "7", 72: "8", 73: "9", 82: "0"}
KEY_LINE_END = frozenset({28, 96, 15})  # ENTER, KPENTER, TAB
KEY_DOWN = 1


class KeyLineAssembler:
    """Key-down events of a keyboard-emulating reader -> text lines (shift and other keys ignored)."""

    def __init__(self) -> None:
        self._chars: list[str] = []
        self.ignored_keys = 0

    def feed(self, code: int, value: int) -> str | None:
        """One EV_KEY event; returns the finished line when ENTER/TAB arrives."""
        if value != KEY_DOWN:
            return None
        if code in KEY_LINE_END:
            line, self._chars = "".join(self._chars), []
            return line or None
        char = KEY_CHARS.get(code)
        if char is None:
            self.ignored_keys += 1
        elif len(self._chars) < MAX_LINE_BYTES:
            self._chars.append(char)
        return None


class HoldOff:
    """Turns a card held on the reader (re-sent every ~50-500 ms) into one read.

    A card is suppressed while it keeps being seen within ``hold_off_s`` of its previous
    sighting; after a gap longer than that, it counts as a new presentation.
    """

    def __init__(self, hold_off_s: float) -> None:
        self.hold_off_ns = int(hold_off_s * 1e9)
        self._last_seen: dict[str, int] = {}
        self.suppressed = 0

    def accept(self, card: str, now_ns: int) -> bool:
        last = self._last_seen.get(card)
        self._last_seen[card] = now_ns
        if len(self._last_seen) > 64:
            self._last_seen = {c: t for c, t in self._last_seen.items() if now_ns - t <= self.hold_off_ns}
        if last is not None and now_ns - last <= self.hold_off_ns:
            self.suppressed += 1
            return False
        return True
