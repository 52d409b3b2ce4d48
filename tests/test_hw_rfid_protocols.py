"""Card-reader frames through the pure parsers: captured frames, corruption, hold-off, formats."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from hardware.rfid_protocols import (
    CardRead,
    Decoded,
    Em4100Decoder,
    FrameError,
    HoldOff,
    KeyLineAssembler,
    encode_em4100,
    encode_wiegand26,
    format_card,
    make_decoder,
    parse_card_text,
    parse_em4100_payload,
    parse_number_line,
    parse_wiegand_bits,
)

FRAMES = Path(__file__).parent / "fixtures" / "rfid" / "frames.tsv"


def captured() -> list[dict]:
    with FRAMES.open() as handle:
        rows = [line for line in handle if not line.startswith("#")]
    names = ["protocol", "payload", "expect", "printed", "source"]
    return [dict(zip(names, row, strict=True)) for row in csv.reader(rows, delimiter="\t")]


def decode(row: dict):
    if row["protocol"] == "em4100":
        return parse_em4100_payload(row["payload"].encode())
    if row["protocol"] == "wiegand":
        return parse_wiegand_bits(row["payload"])
    return parse_number_line(row["payload"], "hex")


@pytest.mark.parametrize("row", captured(), ids=lambda r: f"{r['source']}-{r['payload']}")
def test_captured_frames(row: dict) -> None:
    if row["expect"] == "reject":
        with pytest.raises(FrameError):
            decode(row)
        return
    assert format_card(decode(row), "dec10") == row["expect"]


def test_printed_facility_form_matches_the_card() -> None:
    decoded = parse_em4100_payload(b"6F007B39725F")
    assert format_card(decoded, "fc_card") == "123,14706"  # printed on the card: "123,14706"
    assert format_card(decoded, "hex10") == "6F007B3972"


def test_wiegand_view_agrees_with_em4100_view_of_the_same_fob() -> None:
    uart = parse_em4100_payload(b"01001293D858")
    wiegand = parse_wiegand_bits("00001001010010011110110001")
    assert (wiegand.facility, wiegand.number) == (uart.facility, uart.number) == (18, 37848)
    assert format_card(wiegand, "dec10") == format_card(uart, "dec10") == "0001217496"


@pytest.mark.parametrize("payload, reason", [
    (b"6F007B39725E", "bad checksum"),
    (b"6F007B39725", "wrong frame length"),
    (b"6F007B39G25F", "non-hex character"),
])
def test_bad_em4100_frames(payload: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_em4100_payload(payload)
    assert info.value.reason == reason


def test_wiegand34_parity_and_fields() -> None:
    data = f"{0x1234:016b}{0xBEEF:016b}"
    bits = str(data[:16].count("1") % 2) + data + str(1 - data[16:].count("1") % 2)
    decoded = parse_wiegand_bits(bits)
    assert (decoded.facility, decoded.number) == (0x1234, 0xBEEF)
    flipped = bits[:5] + ("1" if bits[5] == "0" else "0") + bits[6:]
    with pytest.raises(FrameError, match="even parity"):
        parse_wiegand_bits(flipped)


def test_stream_split_at_every_byte_boundary_gives_the_same_cards() -> None:
    stream = encode_em4100(8075634, 0x6F) + b"\x00\xffnoise" + encode_em4100(1217496, 0x01)
    for cut in range(1, len(stream)):
        decoder = Em4100Decoder()
        out = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [format_card(d, "dec10") for d in out] == ["0008075634", "0001217496"]
        assert decoder.stats.noise_bytes == 7


def test_noise_and_broken_frames_never_raise_and_are_counted() -> None:
    rng = random.Random(4)
    decoder = Em4100Decoder()
    good = encode_em4100(13477100)
    bad = bytearray(good)
    bad[11] = ord("F") if bad[11] != ord("F") else ord("E")
    partial = good[:7]
    stream = bytes(rng.randrange(256) for _ in range(500)) + partial + good + bytes(bad) + good
    out = decoder.feed(stream)
    assert [format_card(d, "dec10") for d in out][-2:] == ["0013477100", "0013477100"]
    # This seeded noise opens two frames: one cut short by the next STX, one that runs too long. Then
    # the good frame cuts the partial one short, and the bad one fails its checksum.
    assert decoder.stats.dropped == {"truncated frame": 2, "frame too long": 1, "bad checksum": 1}


def test_reset_counts_a_frame_cut_by_an_unplug() -> None:
    decoder = Em4100Decoder()
    decoder.feed(encode_em4100(42)[:6])
    decoder.reset()
    assert decoder.feed(encode_em4100(42)[6:]) == []
    assert decoder.stats.dropped == {"truncated frame": 1}


@pytest.mark.parametrize("line_format, text, expect", [
    ("dec", "0008075634\r\n", "0008075634"),
    ("dec", "8075634\n", "0008075634"),
    ("hex", "\n0F0184F07A\r", "0025489530"),   # Parallax: LF, 10 hex, CR
    ("hex", "007b3972\r\n", "0008075634"),
])
def test_line_readers(line_format: str, text: str, expect: str) -> None:
    decoder = make_decoder("line", line_format)
    out = decoder.feed(text.encode())
    assert [format_card(d, "dec10") for d in out] == [expect]


def test_line_reader_drops_non_numbers_and_overlong_lines() -> None:
    decoder = make_decoder("line", "dec")
    out = decoder.feed(b"hello\r\n" + b"9" * 200 + b"\r\n0000000042\r\n")
    assert [format_card(d, "dec10") for d in out] == ["0000000042"]
    assert decoder.stats.dropped == {"not a dec card number": 1, "line too long": 1}


def test_wiegand_bridge_lines() -> None:
    decoder = make_decoder("wiegand")
    out = decoder.feed((encode_wiegand26(123, 14706) + "\r\n" + "0101\r\n").encode())
    assert [format_card(d, "fc_card") for d in out] == ["123,14706"]
    assert decoder.stats.dropped == {"wrong bit count": 1}


def test_hold_off_turns_a_held_card_into_one_read() -> None:
    hold = HoldOff(2.0)
    # RDM6300 repeats the frame about every 50 ms while the card stays on the reader.
    accepted = [hold.accept("0008075634", int(i * 50e6)) for i in range(100)]  # held for 5 s
    assert accepted.count(True) == 1
    assert hold.accept("0008075634", int(5e9 + 2.5e9))  # taken away for 2.5 s and back: a new read
    assert hold.accept("0001217496", int(7.6e9))  # another card is never held off


def test_key_events_of_a_keyboard_reader() -> None:
    keys = KeyLineAssembler()
    # "0008075634" then ENTER, each key pressed (1) and released (0), with a shift thrown in.
    codes = [11, 11, 11, 9, 11, 8, 6, 7, 4, 5]
    events = [(42, 1)] + [(c, v) for c in codes for v in (1, 0)] + [(28, 1), (28, 0)]
    lines = [line for code, value in events if (line := keys.feed(code, value))]
    assert lines == ["0008075634"]
    assert keys.ignored_keys == 1


# -- every field of a decoded frame, every reason and raw text of a refused one ---------------------
def refusal(parse, *args) -> tuple[str, str]:
    with pytest.raises(FrameError) as info:
        parse(*args)
    return info.value.reason, info.value.raw


def test_em4100_frame_decodes_to_every_field() -> None:
    # Version byte 0xE5, card 0x1A2B3C4D: the facility is bits 16-23 only (0x2B), not 0x1A2B.
    assert parse_em4100_payload(b"E51A2B3C4DA5") == Decoded(
        "em4100", "E51A2B3C4DA5", 0x1A2B3C4D, 0x2B, 0x3C4D, full_value=0xE51A2B3C4D, full_digits=10)


@pytest.mark.parametrize("payload, expect", [
    (b"6F007B39725E", ("bad checksum", "6F007B39725E")),
    (b"6F007B39725", ("wrong frame length", "6F007B39725")),
    (b"6F007B39G25F", ("non-hex character", "6F007B39G25F")),
    (b"\xff" * 12, ("non-hex character", "\ufffd" * 12)),  # line noise: refused, never a decode error
])
def test_em4100_refusals_name_the_reason_and_the_frame(payload: bytes, expect: tuple[str, str]) -> None:
    assert refusal(parse_em4100_payload, payload) == expect


def test_wiegand_frames_decode_to_every_field() -> None:
    grouped = "0000 1001 0100 1001 1110 1100 01"  # a bridge that groups the bits
    assert parse_wiegand_bits(grouped) == Decoded(
        "wiegand26", "00001001010010011110110001", 1217496, 18, 37848, full_value=1217496)
    data = f"{0x1234:016b}{0xBEEF:016b}"
    bits = str(data[:16].count("1") % 2) + data + str(1 - data[16:].count("1") % 2)
    assert parse_wiegand_bits(bits) == Decoded("wiegand34", bits, 0x1234BEEF, 0x1234, 0xBEEF, full_value=0x1234BEEF)


def test_wiegand_refusals_name_the_reason_and_the_frame() -> None:
    good = "00001001010010011110110001"
    assert refusal(parse_wiegand_bits, "") == ("not a bit string", "")
    assert refusal(parse_wiegand_bits, "0101x") == ("not a bit string", "0101x")
    assert refusal(parse_wiegand_bits, "0101 1") == ("wrong bit count", "0101 1")
    even_broken = "1" + good[1:]
    assert refusal(parse_wiegand_bits, even_broken) == ("bad even parity", even_broken)
    odd_broken = good[:-1] + "0"
    assert refusal(parse_wiegand_bits, odd_broken[:13] + " " + odd_broken[13:]) == ("bad odd parity", odd_broken)


def test_number_lines_decode_to_every_field() -> None:
    assert parse_number_line(" 0008075634 ", "dec") == Decoded(
        "line", "0008075634", 8075634, 123, 14706, full_value=8075634, full_digits=10)
    # Ten hex digits are an EM4100 id: the version byte is dropped from the card number, kept in full_value.
    assert parse_number_line("6F007B3972", "hex") == Decoded(
        "line", "6F007B3972", 8075634, 123, 14706, full_value=0x6F007B3972, full_digits=10)
    # Ten decimal digits above 32 bits are kept whole (only hex drops a version byte); the Wiegand view
    # is of the low 32 bits (0x540BE3FF).
    assert parse_number_line("9999999999", "dec") == Decoded(
        "line", "9999999999", 9999999999, 0x0B, 0xE3FF, full_value=9999999999, full_digits=10)
    longer = parse_number_line("012345678901", "dec")
    assert (longer.card_number, longer.full_digits) == (12345678901, 12)
    assert format_card(longer, "dec10") == "012345678901"  # never cut to ten digits


def test_number_line_refusals_name_the_reason_and_the_text() -> None:
    assert refusal(parse_number_line, " 12AB ", "dec") == ("not a dec card number", "12AB")
    assert refusal(parse_number_line, "12G4", "hex") == ("not a hex card number", "12G4")


def test_typed_card_text_decodes_to_every_field() -> None:
    assert parse_card_text("6f:00:7b:39:72", "hex10") == Decoded(
        "line", "6f007b3972", 8075634, 123, 14706, full_value=0x6F007B3972, full_digits=10)
    assert parse_card_text("65535,65535", "dec10") == Decoded(
        "typed", "65535,65535", 0xFFFFFFFF, 65535, 65535, full_value=0xFFFFFFFF)


@pytest.mark.parametrize("text, card_format, expect", [
    ("12345", "hex10", "not 10 hex digits"),
    ("65536,1", "dec10", "not facility,number"),
    ("1,65536", "fc_card", "not facility,number"),
    ("1,2,3", "dec10", "not facility,number"),
    ("", "dec10", "too few digits"),
    ("0x12", "fc_card", "too few digits"),
])
def test_typed_card_refusals_name_the_reason_and_the_text(text: str, card_format: str, expect: str) -> None:
    assert refusal(parse_card_text, text, card_format) == (expect, text)


def test_encoders_write_the_frames_the_readers_send() -> None:
    assert encode_em4100(42) == b"\x02000000002A2A\x03"  # version byte 0 unless given
    assert encode_em4100(0x1A2B3C4D, 0xE5) == b"\x02E51A2B3C4DA5\x03"  # upper-case hex, XOR checksum
    # even parity over the first 12 data bits, odd over the last 12
    assert encode_wiegand26(1, 3) == "10000000100000000000000111"
    assert encode_wiegand26(0xF0, 0x8001) == "11111000010000000000000010"


def test_decoders_by_protocol() -> None:
    assert [d.card_number for d in make_decoder("line").feed(b"0000000042\r\n")] == [42]  # decimal by default
    assert [d.card_number for d in make_decoder("hid", "hex").feed(b"2A\r\n")] == [42]
    with pytest.raises(ValueError, match=r"^unknown card reader protocol 'nfc'$"):
        make_decoder("nfc")


def test_decoders_count_the_frames_they_decode() -> None:
    em = Em4100Decoder()
    em.feed(encode_em4100(1) + encode_em4100(2) + encode_em4100(3))
    assert em.stats.frames == 3
    line = make_decoder("line", "dec")
    line.feed(b"1\r\n2\r\n3\r\n")
    assert line.stats.frames == 3


def test_line_decoder_edges() -> None:
    decoder = make_decoder("line", "dec")
    assert decoder.feed(b"\xff\xfe\r\n") == []  # bytes that are not ASCII: dropped, counted, no error
    assert decoder.feed(b"1" * 64 + b"\r\n") == []  # 64 characters still make a line (too many digits)
    assert decoder.feed(b"1" * 65 + b"\r\n") == []
    assert decoder.stats.dropped == {"not a dec card number": 2, "line too long": 1}
    decoder.feed(b"00080")
    decoder.reset()  # unplugged mid-line: the tail never comes, the next line is read in full
    decoder.reset()  # nothing left to count
    assert [d.card_number for d in decoder.feed(b"0000000042\r\n")] == [42]
    decoder.feed(b"   ")
    decoder.reset()  # only blanks: not a card
    assert decoder.stats.dropped == {"not a dec card number": 2, "line too long": 1, "truncated line": 1}


def test_hold_off_window_edges() -> None:
    hold = HoldOff(2.0)
    assert hold.accept("A", 0)
    assert not hold.accept("A", 2_000_000_000)  # seen again exactly at the window: still held
    assert hold.accept("A", 4_000_000_001)  # 1 ns past the window after the last sighting: a new read
    assert not hold.accept("A", 4_000_000_002)
    assert hold.suppressed == 2


def test_hold_off_forgets_only_cards_gone_longer_than_the_window() -> None:
    hold = HoldOff(2.0)
    assert hold.accept("A", 0)
    # 64 other cards later: the table is trimmed, but A, seen exactly one window ago, is still held off
    assert all(hold.accept(f"{n:010d}", 2_000_000_000) for n in range(64))
    assert not hold.accept("A", 2_000_000_000)
    assert not hold.accept("0000000063", 2_000_000_000)
    assert hold.suppressed == 2


def test_keyboard_reader_line_is_capped_and_unknown_keys_counted() -> None:
    keys = KeyLineAssembler()
    assert keys.feed(28, 1) is None  # ENTER alone: no line
    for _ in range(70):
        assert keys.feed(2, 1) is None
    keys.feed(42, 1)
    keys.feed(56, 1)
    assert keys.feed(28, 0) is None  # a key release ends nothing
    assert keys.feed(28, 1) == "1" * 64
    assert keys.ignored_keys == 2


def test_card_read_json() -> None:
    read = CardRead("0008075634", "em4100", "6F007B39725F", 12)
    assert read.as_json() == {"card": "0008075634", "protocol": "em4100", "raw": "6F007B39725F"}
