"""The one rule for text, names and photos that enter, on its own (properties over generated input, with
Hypothesis) and through the kiosk's own doors: the CLI, its CSV export and its photo import."""

from __future__ import annotations

import csv
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CONSENT_ARGS
from kiosk.base.errors import InvalidInput
from kiosk.base.text import BIDI_CONTROLS, NAME_MAX_CHARS, check_name, check_text, csv_cell, escaped, unsafe_char
from kiosk.face.images import MAX_PIXELS, ImageRefused, check_image, decode_image, image_header, read_image

REFUSED = st.one_of(st.characters(max_codepoint=0x1F), st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
                    st.sampled_from(sorted(BIDI_CONTROLS)))
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or char in BIDI_CONTROLS or 0xD800 <= code <= 0xDFFF


# -- text and names ---------------------------------------------------------------------


@PROPERTY
@given(st.text())
def test_text_is_refused_exactly_when_it_holds_a_refused_character(text: str) -> None:
    if any(refused(c) for c in text):
        with pytest.raises(InvalidInput, match=r"^note holds the .* U\+[0-9A-F]{4} at position \d+"):
            check_text(text, "note")
    else:
        assert check_text(text, "note") == text


@PROPERTY
@given(st.text(), REFUSED, st.text())
def test_one_refused_character_anywhere_is_found_and_named(before: str, bad: str, after: str) -> None:
    problem = unsafe_char(before + bad + after)
    assert problem is not None
    if not any(refused(c) for c in before):
        assert problem.endswith(f"U+{ord(bad):04X} at position {len(before) + 1}")


@PROPERTY
@given(st.text())
def test_escaped_text_always_passes_and_plain_text_is_left_alone(text: str) -> None:
    assert unsafe_char(escaped(text)) is None
    if unsafe_char(text) is None:
        assert escaped(text) == text


@PROPERTY
@given(st.text(max_size=NAME_MAX_CHARS + 20))
def test_a_name_is_refused_or_comes_back_trimmed_plain_and_stable(name: str) -> None:
    try:
        kept = check_name(name)
    except InvalidInput as exc:
        assert "name" in exc.what
        assert not name.strip() or len(name.strip()) > NAME_MAX_CHARS or unsafe_char(name.strip())
        return
    assert kept == name.strip() and 0 < len(kept) <= NAME_MAX_CHARS and unsafe_char(kept) is None
    assert check_name(kept) == kept


@PROPERTY
@given(st.text())
def test_a_csv_cell_never_starts_a_formula(value: str) -> None:
    cell = csv_cell(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or cell == value == ""
    assert cell in (value, "'" + value)


def test_csv_cells_keep_numbers_and_plain_text() -> None:
    assert [csv_cell(v) for v in (-1.5, 3, None, "Wang Li", "\t=1", "\r+1")] == [-1.5, 3, None, "Wang Li",
                                                                              "'\t=1", "'\r+1"]


# -- the image header reader ------------------------------------------------------------------


def png(width: int, height: int, *, bad_ancillary_crc: bool = False, colour_type: int = 0) -> bytes:
    """A PNG of zeros (grey or RGB), compressed 500 rows at a time (never held whole in memory)."""
    def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
        crc = zlib.crc32(kind + data) if crc is None else crc
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = 1 + width * (3 if colour_type == 2 else 1)
    packer = zlib.compressobj(9)
    parts = [packer.compress(b"\x00" * (row * 500)) for _ in range(height // 500)]
    parts += [packer.compress(b"\x00" * (row * (height % 500))), packer.flush()]
    text = chunk(b"tEXt", b"Comment\x00hello", crc=0 if bad_ancillary_crc else None)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + text + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def jpeg_header_bytes(width: int, height: int, segments: list[tuple[int, bytes]], sof: int) -> bytes:
    out = b"\xff\xd8"
    for marker, body in segments:
        out += bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return out + bytes([0xFF, sof]) + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xda"


SIZES = st.integers(min_value=1, max_value=65535)


@PROPERTY
@given(SIZES, SIZES)
def test_the_png_header_gives_the_size_it_announces(width: int, height: int) -> None:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
    header = image_header(data)
    assert (header.format, header.width, header.height) == ("png", width, height)


@PROPERTY
@given(SIZES, SIZES, st.lists(st.tuples(st.sampled_from([0xE0, 0xE1, 0xDB, 0xC4, 0xFE, 0xEE]),
                                        st.binary(max_size=60)), max_size=5),
       st.sampled_from([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF]))
def test_the_jpeg_header_is_found_after_any_segments(width: int, height: int, segments: list, sof: int) -> None:
    header = image_header(jpeg_header_bytes(width, height, segments, sof))
    assert (header.format, header.width, header.height) == ("jpeg", width, height)


@PROPERTY
@given(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP"]),
       st.binary(max_size=300))
def test_any_bytes_are_a_header_or_a_named_refusal_never_a_crash(prefix: bytes, rest: bytes) -> None:
    try:
        header = check_image(prefix + rest, "photo.x")
    except ImageRefused as exc:
        assert exc.reason in {"too_large", "unknown_format", "unreadable"} and "photo.x" in exc.what
    else:
        assert 0 < header.pixels <= MAX_PIXELS


# -- photos at the kiosk ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bombs") / "bomb.png"
    path.write_bytes(png(20_000, 20_000, bad_ancillary_crc=True))
    return path


def test_a_400mp_png_with_a_bad_crc_is_refused_from_its_header(bomb_file: Path) -> None:
    assert bomb_file.stat().st_size < 600_000
    with pytest.raises(ImageRefused, match=r"20000x20000 pixels \(400 MP\); at most 40 MP") as refusal:
        read_image(bomb_file)
    assert refusal.value.reason == "too_large"


def test_the_kiosk_import_refuses_the_bomb_with_its_size(invoke, kiosk_home: Path, bomb_file: Path) -> None:
    result = invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E1", "--name", "Li", "--photos", str(bomb_file),
                    "--config", str(kiosk_home))
    assert result.exit_code != 0 and "20000x20000" in result.output and "Traceback" not in result.output


def test_a_small_png_pil_cannot_open_is_refused_before_opencv() -> None:
    data = png(64, 48, bad_ancillary_crc=True)
    with pytest.raises(ImageRefused, match="damaged"):
        decode_image(data)
    assert decode_image(png(64, 48)).shape == (48, 64, 3)
    with pytest.raises(ImageRefused, match="not a JPEG, PNG or WebP"):
        decode_image(b"GIF89a" + b"\x00" * 40)


def test_opencv_itself_refuses_more_than_the_pixel_limit() -> None:
    """A decoder reached without our header check (cv2 directly) still stops at the limit: kiosk sets
    OpenCV's own limit before cv2 loads."""
    assert os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] == str(MAX_PIXELS)
    script = ("import sys, numpy as np, kiosk, cv2\n"
              "data = np.frombuffer(sys.stdin.buffer.read(), np.uint8)\n"
              "try:\n    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)\nexcept cv2.error as exc:\n"
              "    print('refused' if 'MAX_IMAGE_PIXELS' in str(exc) else exc)\nelse:\n    print(image is None)\n")
    done = subprocess.run([sys.executable, "-c", script], input=png(7000, 6000), capture_output=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"})
    assert done.stdout.decode().strip() == "refused", done.stderr.decode()[-2000:]


# -- the kiosk's CLI and CSV export -------------------------------------------------------------


def test_the_kiosk_refuses_control_characters_and_overrides_at_every_door(kiosk_home: Path, invoke) -> None:
    cfg = ("--config", str(kiosk_home))
    bidi = invoke("employee", "add", "E001", "--name", "\u202eilaW", *cfg)
    assert bidi.exit_code == 1 and "U+202E" in bidi.output
    assert invoke("employee", "add", "E001", "--name", "Wang Li", *cfg).exit_code == 0
    nul = invoke("punch", "--employee", "E001", "--note", "forgot\x00card", *cfg)
    assert nul.exit_code == 1 and "note holds the control character U+0000" in nul.output
    esc = invoke("punch", "--employee", "E001", "--note", "\x1b[2Jreader broken", *cfg)
    assert esc.exit_code == 1 and "U+001B" in esc.output
    assert invoke("db", "export", *cfg).stdout == ""


def test_the_kiosk_csv_export_neutralises_formulas(kiosk_home: Path, invoke) -> None:
    cfg = ("--config", str(kiosk_home))
    invoke("employee", "add", "E001", "--name", "Li", *cfg)
    for note in ('=HYPERLINK("http://evil.example","x")', "@SUM(1)", "fine"):
        assert invoke("punch", "--employee", "E001", "--note", note, "--yes", *cfg).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(invoke("db", "export", "--format", "csv", *cfg).stdout)))
    assert [r["note"] for r in rows] == ['\'=HYPERLINK("http://evil.example","x")', "'@SUM(1)", "fine"]
