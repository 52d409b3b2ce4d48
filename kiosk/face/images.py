"""Reading photos: BGR uint8 with EXIF orientation applied, or a clear error naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import InvalidInput

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR uint8 (grey photos become three equal channels), or InvalidInput."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        reason = "does not exist" if not Path(path).exists() else "is not a readable image (JPEG, PNG, BMP, WebP, TIFF)"
        raise InvalidInput(f"photo {path} {reason}", fix="Check the path and the file.")
    return image


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
