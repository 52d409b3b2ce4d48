"""Card-reader frames through the pure parsers: captured frames, corruption, hold-off, formats."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from hardware.rfid_protocols import (
    Em4100Decoder,
    FrameError,
    HoldOff,
    KeyLineAssembler,
    encode_em4100,
    encode_wiegand26,
    format_card,
    make_decoder,
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
