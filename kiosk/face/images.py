"""Reading photos: a size read from the file's own header first, then BGR uint8 with EXIF orientation
applied, or a clear error naming the photo.

Every path that decodes a photo from outside (kiosk import, CLI, the hub's HR uploads) goes through
``decode_image``: ``image_header`` reads width x height from the PNG IHDR chunk, the JPEG SOF marker or
the WebP frame header (phones save WebP under .jpg names) without decoding anything; other formats, a
size above IMAGE_MAX_PIXELS, or a file PIL cannot open are refused before OpenCV runs (which has the
same pixel limit, set in ``kiosk/__init__``).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk import IMAGE_MAX_PIXELS
from kiosk.base.errors import InvalidInput

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_PIXELS = IMAGE_MAX_PIXELS
MAX_FILE_BYTES = 50 * 2**20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8"
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): C0-CF but DHT, JPG and DAC.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length: TEM, RST0-7 (SOI/EOI never appear before a frame header).
STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
SIZE_FIX = "Scale it down (a face 200+ px wide is plenty)."


class ImageRefused(InvalidInput):
    """A photo refused before decoding; ``reason`` is a stable name: too_large, unknown_format, unreadable."""

    def __init__(self, reason: str, what: str, fix: str = "Send the photo again as a JPEG, PNG or WebP file.") -> None:
        super().__init__(what, fix)
        self.reason = reason


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "png", "jpeg" or "webp"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def image_header(data: bytes, source: str = "the photo") -> ImageHeader:
    """Format, width and height from the header alone, or ImageRefused (unknown format, damaged header)."""
    if data.startswith(PNG_SIGNATURE):
        return _png_header(data, source)
    if data.startswith(JPEG_START):
        return _jpeg_header(data, source)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_header(data, source)
    raise ImageRefused("unknown_format", f"{source} is not a JPEG, PNG or WebP file")


def _png_header(data: bytes, source: str) -> ImageHeader:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageRefused("unreadable", f"{source} is a PNG without its IHDR header chunk")
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("png", width, height)


def _jpeg_header(data: bytes, source: str) -> ImageHeader:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in STANDALONE_MARKERS:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in SOF_MARKERS:
            if length < 7 or pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return ImageHeader("jpeg", width, height)
        if marker == 0xDA or length < 2:  # image data before any frame header, or a broken segment
            break
        pos += 2 + length
    raise ImageRefused("unreadable", f"{source} is a JPEG without a readable frame header (SOF)")


def _webp_header(data: bytes, source: str) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        return ImageHeader("webp", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    raise ImageRefused("unreadable", f"{source} is a WebP without a readable frame header")


def check_image(data: bytes, source: str = "the photo") -> ImageHeader:
    """The header of a photo fit to decode, or ImageRefused saying why not — nothing is decoded here."""
    if len(data) > MAX_FILE_BYTES:
        raise ImageRefused("too_large", f"{source} is {len(data)} bytes; at most {MAX_FILE_BYTES} are accepted",
                           SIZE_FIX)
    header = image_header(data, source)
    if header.width == 0 or header.height == 0:
        raise ImageRefused("unreadable", f"{source} announces {header.width}x{header.height} pixels")
    if header.pixels > MAX_PIXELS:
        raise ImageRefused("too_large", f"{source} is {header.width}x{header.height} pixels "
                           f"({header.pixels / 1e6:.0f} MP); at most {MAX_PIXELS // 1_000_000} MP are accepted",
                           SIZE_FIX)
    _pil_check(data, source, header)
    if header.format == "jpeg" and truncated_jpeg(data):
        raise ImageRefused("unreadable", f"{source} is cut short (the JPEG ends early)",
                           "Copy or export the photo again (the whole file).")
    return header


def _pil_check(data: bytes, source: str, header: ImageHeader) -> None:
    """PIL must open the file as what its header says, with the same size, and find its chunks intact."""
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[PIL_FORMATS[header.format]]) as im:
                size = im.size
                im.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused("too_large", f"{source} has too many pixels to decode", SIZE_FIX) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, struct.error):
        raise ImageRefused("unreadable", f"{source} is damaged (its {header.format.upper()} structure does "
                           "not check out)") from None
    if size != (header.width, header.height):
        raise ImageRefused("unreadable", f"{source} has a damaged header")


def truncated_jpeg(data: bytes) -> bool:
    """A JPEG whose end-of-image marker is missing: the file was cut short (a copy that did not finish)."""
    return data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-4096:]


def decode_image(data: bytes, source: str = "the photo") -> np.ndarray:
    """A photo's bytes as BGR uint8 (grey photos become three equal channels), after check_image."""
    check_image(data, source)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise ImageRefused("unreadable", f"{source} is not a decodable JPEG, PNG or WebP image")
    return image


def read_image(path: Path) -> np.ndarray:
    """A photo file as BGR uint8, or InvalidInput naming the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageRefused("too_large", f"photo {path} is {path.stat().st_size} bytes; at most "
                               f"{MAX_FILE_BYTES} are accepted", SIZE_FIX)
        data = path.read_bytes()
    except OSError:
        raise InvalidInput(f"photo {path} does not exist or cannot be read",
                           fix="Check the path and the file.") from None
    return decode_image(data, f"photo {path}")


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
