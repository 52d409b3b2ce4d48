"""The card-reader and GPS parsers on generated input (Hypothesis): whatever bytes a reader or a
receiver sends, the parser never raises, every frame it accepts is one a real card could give, and what
the encoders write is read back exactly. The real captures and frames are in test_hw_nmea.py and
test_hw_rfid_protocols.py; these are the properties over everything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.nmea import NmeaTracker, gga_sentence, nmea_sentence, rmc_sentence
from hardware.rfid_protocols import (
    Em4100Decoder,
    FrameError,
    encode_em4100,
    encode_wiegand26,
    make_decoder,
    parse_card_text,
    parse_wiegand_bits,
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CARD = st.integers(min_value=0, max_value=2**32 - 1)
# Chunks as a serial port hands them over: any bytes, cut anywhere.
CHUNKS = st.lists(st.binary(max_size=64), max_size=20)


@PROPERTY
@given(protocol=st.sampled_from(["em4100", "line", "wiegand"]), line_format=st.sampled_from(["dec", "hex"]),
       chunks=CHUNKS)
def test_no_bytes_make_a_card_decoder_raise(protocol: str, line_format: str, chunks: list[bytes]) -> None:
    decoder = make_decoder(protocol, line_format)
    for chunk in chunks:
        for decoded in decoder.feed(chunk):
            # Whatever it accepts is a card number a reader can report (32 bits at most).
            assert 0 <= decoded.card_number < 2**32 and decoded.protocol


@PROPERTY
@given(card=CARD, version=st.integers(min_value=0, max_value=255), noise=st.binary(max_size=40),
       cut=st.integers(min_value=0, max_value=14))
def test_an_em4100_frame_is_read_back_exactly_after_any_noise_and_any_split(card: int, version: int, noise: bytes,
                                                                           cut: int) -> None:
    frame = encode_em4100(card, version)
    decoder = Em4100Decoder()
    decoder.feed(noise.replace(b"\x02", b"").replace(b"\x03", b""))  # line noise, no frame marks
    decoder.reset()  # as the reader does when it reopens the port
    got = decoder.feed(frame[:cut]) + decoder.feed(frame[cut:])
    assert [(d.card_number, d.full_value) for d in got] == [(card, version << 32 | card)]


@PROPERTY
@given(card=CARD, flip=st.integers(min_value=1, max_value=12))
def test_an_em4100_frame_with_one_changed_hex_digit_is_never_a_card(card: int, flip: int) -> None:
    frame = bytearray(encode_em4100(card))
    digit = chr(frame[flip])
    frame[flip] = ord("0" if digit != "0" else "1")
    assert [d.card_number for d in Em4100Decoder().feed(bytes(frame))] == []


@PROPERTY
@given(facility=st.integers(min_value=0, max_value=255), number=st.integers(min_value=0, max_value=65535))
def test_wiegand26_bits_are_read_back_and_a_flipped_bit_is_refused(facility: int, number: int) -> None:
    bits = encode_wiegand26(facility, number)
    decoded = parse_wiegand_bits(bits)
    assert (decoded.facility, decoded.number) == (facility, number)
    for index in range(len(bits)):
        flipped = bits[:index] + ("1" if bits[index] == "0" else "0") + bits[index + 1:]
        with pytest.raises(FrameError):  # either parity catches any single flipped bit
            parse_wiegand_bits(flipped)


@PROPERTY
@given(text=st.text(max_size=40), card_format=st.sampled_from(["dec10", "hex10", "fc_card"]))
def test_typed_card_text_is_a_card_or_a_clear_refusal(text: str, card_format: str) -> None:
    try:
        decoded = parse_card_text(text, card_format)
    except FrameError as exc:
        assert exc.reason  # says why
    else:
        assert 0 <= decoded.card_number < 2**32


PRINTABLE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
# Sentences with a right checksum and garbage fields: they get past the checksum into pynmea2 and our handlers.
CHECKSUMMED = st.builds(lambda kind, rest: nmea_sentence(kind + rest),
                        st.sampled_from(["GNGGA,", "GPRMC,", "GNRMC,", "GNGSA,", "GPZDA,", "GPGSV,", "GPVTG,"]),
                        PRINTABLE)


@PROPERTY
@given(lines=st.lists(st.one_of(st.text(max_size=90), st.binary(max_size=90).map(lambda b: b.decode("latin-1")),
                                 CHECKSUMMED), max_size=30))
def test_no_line_makes_the_gps_tracker_raise_and_every_line_is_counted(lines: list[str]) -> None:
    tracker = NmeaTracker()
    for index, line in enumerate(lines):
        fix = tracker.feed_line(line, index * 1_000_000)
        if fix is not None:
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
    stats = tracker.stats
    # Every line with something in it is counted: as a sentence, a bad checksum or unparsable (a sentence
    # whose fields cannot be used is counted as a sentence and as unparsable); only sentences give fixes.
    seen = sum(1 for line in lines if line.strip())
    assert seen <= stats.sentences + stats.invalid <= seen + stats.sentences
    assert stats.fixes <= stats.sentences


@PROPERTY
@given(lat=st.floats(min_value=-89.99, max_value=89.99), lon=st.floats(min_value=-179.99, max_value=179.99),
       seconds=st.integers(min_value=0, max_value=86399), sats=st.integers(min_value=4, max_value=24),
       hdop=st.floats(min_value=0.5, max_value=20.0))
def test_a_fix_the_encoders_write_is_read_back(lat: float, lon: float, seconds: int, sats: int, hdop: float) -> None:
    utc = datetime(2026, 11, 29, tzinfo=UTC).replace(hour=seconds // 3600, minute=seconds // 60 % 60,
                                                       second=seconds % 60)
    tracker = NmeaTracker()
    tracker.feed_line(rmc_sentence(utc, lat, lon, valid=True), 0)
    fix = tracker.feed_line(gga_sentence(utc, lat, lon, quality=1, sats=sats, hdop=hdop), 1_000_000)
    assert fix is not None
    # NMEA keeps 1/10,000 of a minute: about 0.2 m, well under a geofence's resolution.
    assert fix.lat == pytest.approx(lat, abs=2e-6) and fix.lon == pytest.approx(lon, abs=2e-6)
    assert fix.utc == utc and fix.sats == sats
