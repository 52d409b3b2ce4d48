"""Branch attendance kiosk: on-device face recognition, card and GPS punches, encrypted store."""

import os

__version__ = "0.1.0"

IMAGE_MAX_PIXELS = 40_000_000
"""The largest photo (width x height) any path decodes: ~120 MB as BGR, still safe on a 4 GB Raspberry Pi;
a face photo never needs more. kiosk.face.images checks it from the file's header before any decoder runs."""

# OpenCV reads its own decoding limit once, when it loads: set here, before any module imports cv2, so
# a decoder reached some other way still refuses a pixel bomb (a cv2.error instead of gigabytes).
os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(IMAGE_MAX_PIXELS)
