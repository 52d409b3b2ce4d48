"""Reading photos: BGR uint8 with EXIF orientation applied, or a clear error naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.base.errors import InvalidInput

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# Decoding needs ~3 bytes a pixel: 40 MP is ~120 MB, still safe on a 4 GB Raspberry Pi; a face
# photo never needs more (a 200 px face is plenty).
MAX_PIXELS = 40_000_000


def oversized(source: Path | bytes) -> str | None:
    """A sentence when the image header announces more than MAX_PIXELS, read without decoding."""
    import io

    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None  # not an image PIL knows: the decoder below gives the error
    if width * height > MAX_PIXELS:
        return (f"is {width}x{height} pixels ({width * height / 1e6:.0f} MP); at most "
                f"{MAX_PIXELS // 1_000_000} MP are accepted")
    return None


def truncated_jpeg(data: bytes) -> bool:
    """A JPEG whose end-of-image marker is missing: the file was cut short (a copy that did not finish)."""
    return data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-4096:]


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR uint8 (grey photos become three equal channels), or InvalidInput."""
    problem = oversized(Path(path)) if Path(path).is_file() else None
    if problem:
        raise InvalidInput(f"photo {path} {problem}", fix="Scale it down (a face 200+ px wide is plenty).")
    if Path(path).is_file() and truncated_jpeg(Path(path).read_bytes()):
        raise InvalidInput(f"photo {path} is cut short (the JPEG ends early)", fix="Copy or export the photo again.")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        reason = "does not exist" if not Path(path).exists() else "is not a readable image (JPEG, PNG, BMP, WebP, TIFF)"
        raise InvalidInput(f"photo {path} {reason}", fix="Check the path and the file.")
    return image


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
