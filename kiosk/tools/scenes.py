"""Walk-up scenes for the demo and the walk-up benchmark: identities from photos, image-sequence cameras.

An image-sequence camera (`images:DIR`) plays files in name order; a walk-up is the same photo for
a number of frames on a plain background, nobody in view is the background alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.face.images import image_files, read_image

log = logging.getLogger(__name__)

FRAME_W, FRAME_H = 640, 480
BACKGROUND = 40
SENSOR_NOISE = 2  # grey levels of noise a real sensor adds to a still scene


@dataclass(frozen=True)
class Identity:
    """A person for a scene: photos to enrol, and a different photo to walk up with."""

    name: str
    enrol: tuple[np.ndarray, ...]
    walkup: np.ndarray


def compose(photo: np.ndarray | None, shift: tuple[int, int] = (0, 0), scale: float = 1.0,
            noise_seed: int | None = None) -> np.ndarray:
    """A camera frame: the photo letterboxed on a plain background (None: nobody in view)."""
    canvas = np.full((FRAME_H, FRAME_W, 3), BACKGROUND, np.uint8)
    if photo is not None:
        h, w = photo.shape[:2]
        s = min((FRAME_H - 40) / h, (FRAME_W - 40) / w) * scale
        image = cv2.resize(photo, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        y = (FRAME_H - image.shape[0]) // 2 + shift[1]
        x = (FRAME_W - image.shape[1]) // 2 + shift[0]
        y0, x0 = max(0, y), max(0, x)
        y1, x1 = min(FRAME_H, y + image.shape[0]), min(FRAME_W, x + image.shape[1])
        canvas[y0:y1, x0:x1] = image[y0 - y:y1 - y, x0 - x:x1 - x]
    if noise_seed is not None:
        rng = np.random.default_rng(noise_seed)
        canvas = cv2.add(canvas, rng.integers(0, SENSOR_NOISE + 1, canvas.shape, dtype=np.uint8))
    return canvas


APPROACH_SCALES = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
"""A person walking up: the photo grows over about half a second at 15 fps from half to 0.8 of the frame
height (an LFW photo's face from ~60 to ~95 px wide, a tight crop's from ~180 to ~300 px), then stays."""


def write_scene(folder: Path, plan: list[tuple], approach: bool = False) -> list[str]:
    """Write frames for (photo or None, frame count, label) steps; returns the first file name of each step.

    With ``approach`` each photo step starts small and grows (APPROACH_SCALES) as a person walking up
    would, instead of appearing at full size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    firsts, index = [], 0
    for step, (photo, count, label) in enumerate(plan):
        for i in range(count):
            name = f"{index:06d}-{step:04d}-{label}.jpg"
            scale = APPROACH_SCALES[min(i, len(APPROACH_SCALES) - 1)] if approach else 1.0
            cv2.imwrite(str(folder / name), compose(photo, scale=scale, noise_seed=index))
            if i == 0:
                firsts.append(name)
            index += 1
    return firsts


def identities_from_folder(root: Path, limit: int) -> list[Identity]:
    """One identity per sub-folder (folders starting with '_' are skipped), in name order."""
    people = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        files = image_files(folder)
        if len(files) < 2:
            continue
        people.append(Identity(folder.name.replace("_", " "), (read_image(files[0]),), read_image(files[1])))
        if len(people) >= limit:
            break
    return people


def sample_photos() -> list[Path]:
    """Photos shipped in the installed wheels: insightface's own sample group photo first."""
    import importlib.util
    photos = []
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.submodule_search_locations:
        photos.append(Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "t1.jpg")
    from kiosk.face.pack import sample_images
    photos += sample_images()
    return [p for p in photos if p.is_file()]


def identities_from_wheel(engine, limit: int) -> list[Identity]:  # noqa: ANN001 - FaceEngine
    """People cut from the sample photos shipped in the wheels: every face that passes the quality gate.

    The enrolment photo is the face's crop; the walk-up shows it mirrored and a little darker, so
    recognition has real work to do.
    """
    people = []
    for path in sample_photos():
        image = read_image(path)
        for index, face in enumerate(engine.detect_photo(image)):
            cx, cy = face.center
            half = int(1.1 * max(face.width, face.height))
            crop = image[max(0, int(cy) - half):int(cy) + half, max(0, int(cx) - half):int(cx) + half].copy()
            found = engine.detect(crop)
            if len(found) != 1 or not engine.assess_quality(crop, found[0]).ok:
                continue  # a neighbour's face in the crop, or not good enough to enrol
            walkup = cv2.convertScaleAbs(cv2.flip(crop, 1), alpha=0.9)
            people.append(Identity(f"{path.stem} face {index + 1}", (crop,), walkup))
            if len(people) >= limit:
                return people
    return people


def default_faces_dir() -> Path | None:
    """The shared test photo set ($KIOSK_FACE_DATA, else ../shared/faces beside a source checkout), if present."""
    checkout = Path(__file__).resolve().parents[2]
    candidate = Path(os.environ.get("KIOSK_FACE_DATA") or checkout.parent / "shared" / "faces")
    return candidate if (candidate / "MANIFEST.tsv").exists() else None


def default_videos_dir() -> Path | None:
    """The shared walk-up and blink videos ($KIOSK_VIDEO_DATA, else ../shared/videos), if present."""
    checkout = Path(__file__).resolve().parents[2]
    candidate = Path(os.environ.get("KIOSK_VIDEO_DATA") or checkout.parent / "shared" / "videos")
    return candidate if (candidate / "MANIFEST.tsv").exists() else None


def enrol_identity(store, engine, gallery, employee_id: str, person: Identity) -> int:  # noqa: ANN001
    """Enrol through the same photo checks as `kiosk enroll add`; returns templates stored."""
    from enrollment.photos import check_photo
    store.roster.add(employee_id, person.name, exist_ok=True)
    stored = 0
    for i, image in enumerate(person.enrol):
        check = check_photo(engine, image, f"{person.name} #{i}", gallery, employee_id)
        if not check.ok:
            log.warning("%s: photo refused (%s)", person.name, check.detail)
            continue
        quality = check.quality.score if check.quality is not None else None
        template_id = store.roster.add_template(employee_id, engine.model_id, check.vector, quality, "demo")
        gallery.add(employee_id, check.vector, template_id)
        stored += 1
    return stored
