"""The face engine on real photos: detection (groups, no faces, tight crops), embeddings, model packs."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.base.errors import ModelError
from kiosk.face.config import FaceConfig
from kiosk.face.engine import FaceEngine
from kiosk.face.pack import bundled_pack_dir, resolve_pack


def test_same_person_scores_above_different_people(face_engine, face_photos) -> None:
    vectors = {}
    for identity, photos in face_photos.people.items():
        for photo in photos:
            face = face_engine.choose(face_engine.detect_photo(photo.image), photo.image.shape, policy="center")
            assert face is not None, f"no face in {photo.name}"
            vectors[photo.name] = (identity, face_engine.embed(photo.image, face))
    same, different = [], []
    names = sorted(vectors)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (id_a, va), (id_b, vb) = vectors[a], vectors[b]
            (same if id_a == id_b else different).append(float(va @ vb))
    assert same and different
    # Every same-person pair beats every different-person pair, look-alikes included.
    assert min(same) > max(different), (min(same), max(different))


def test_embedding_is_512_unit_float32(face_engine, face_photos) -> None:
    photo = face_photos.clean[0]
    face = face_engine.choose(face_engine.detect(photo.image), photo.image.shape)
    vec = face_engine.embed(photo.image, face)
    assert vec.shape == (512,) and vec.dtype == np.float32
    assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    # Deterministic: the same frame gives the same template.
    assert float(vec @ face_engine.embed(photo.image, face)) > 0.9999


def test_no_face_images_give_no_face(face_engine, face_photos) -> None:
    found = {p.name: len(face_engine.detect_photo(p.image)) for p in face_photos.no_faces}
    assert found and all(n == 0 for n in found.values()), found


def test_group_photos_give_several_faces(face_engine, face_photos) -> None:
    counts = {p.name: len(face_engine.detect_photo(p.image)) for p in face_photos.groups}
    assert counts and all(n >= 2 for n in counts.values()), counts
    photo = max(face_photos.groups, key=lambda p: counts[p.name])
    faces = face_engine.detect(photo.image)
    central = face_engine.choose(faces, photo.image.shape, policy="center")
    largest = face_engine.choose(faces, photo.image.shape, policy="largest")
    assert largest.width == max(f.width for f in faces)
    h, w = photo.image.shape[:2]
    dist = [np.hypot(f.center[0] - w / 2, f.center[1] - h / 2) for f in faces]
    assert central is faces[int(np.argmin(dist))]
    assert face_engine.crowded(faces, largest)


def test_tight_crops_are_found(face_engine, face_photos) -> None:
    missed = [p.name for p in face_photos.tight if not face_engine.detect_photo(p.image)]
    assert face_photos.tight and missed == []


def test_tight_crops_need_the_padded_retry_at_a_large_detector_input(face_photos) -> None:
    """With a 640 px detector input (a Jetson setting) one pass misses ID-style crops; padding finds them."""
    engine = FaceEngine.from_config(FaceConfig(det_size_px=640))
    sample = face_photos.tight[:: max(1, len(face_photos.tight) // 12)]
    assert all(engine.detect(p.image) == [] for p in sample if face_photos.real)
    missed = [p.name for p in sample if not engine.detect_photo(p.image)]
    assert missed == []


def test_default_pack_is_the_bundled_wheel_and_model_id_is_the_recogniser_hash(face_engine) -> None:
    pack = face_engine.pack
    assert pack.bundled and pack.directory == bundled_pack_dir()
    assert pack.detector.name == "scrfd_500m_bnkps.onnx" and pack.recognizer.name == "w600k_mbf.onnx"
    assert face_engine.model_id == hashlib.sha256(pack.recognizer.read_bytes()).hexdigest()


def _copy_pack(tmp_path: Path) -> Path:
    pack = resolve_pack(FaceConfig())
    folder = tmp_path / "pack"
    folder.mkdir()
    for path in (pack.detector, pack.recognizer):
        shutil.copy(path, folder / path.name)
    return folder


def test_a_configured_pack_folder_loads(tmp_path: Path, face_engine) -> None:
    folder = _copy_pack(tmp_path)
    engine = FaceEngine.from_config(FaceConfig(pack_dir=folder))
    assert not engine.pack.bundled and engine.model_id == face_engine.model_id


def test_missing_pack_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        FaceEngine.from_config(FaceConfig(pack_dir=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.what and "face.pack_dir" in err.value.fix


def test_missing_recogniser_names_what_was_looked_for(tmp_path: Path) -> None:
    folder = _copy_pack(tmp_path)
    (folder / "w600k_mbf.onnx").unlink()
    with pytest.raises(ModelError) as err:
        FaceEngine.from_config(FaceConfig(pack_dir=folder))
    assert "no recognizer model" in err.value.what and "w600k_mbf.onnx" in err.value.what
    assert "face.recognizer_file" in err.value.fix


def test_corrupt_model_file_names_the_file(tmp_path: Path) -> None:
    folder = _copy_pack(tmp_path)
    damaged = folder / "w600k_mbf.onnx"
    damaged.write_bytes(damaged.read_bytes()[: 100_000])
    with pytest.raises(ModelError) as err:
        FaceEngine.from_config(FaceConfig(pack_dir=folder))
    assert str(damaged) in err.value.what and "damaged" in err.value.what
    assert err.value.fix


def test_region_detection_follows_a_face(face_engine, face_photos) -> None:
    photo = face_photos.groups[0]
    faces = face_engine.detect(photo.image)
    target = max(faces, key=lambda f: f.width)
    found = face_engine.detect_region(photo.image, target)
    assert found
    best = max(found, key=lambda f: np.hypot(*np.subtract(f.center, target.center)) * -1)
    assert np.allclose(best.center, target.center, atol=0.1 * target.width)
    assert abs(best.width - target.width) < 0.15 * target.width


# A bystander in a news photo (about 0.4 of the subject's face area) vs two people side by side.
BACKGROUND_FACE = ("Colin_Powell", "Colin_Powell_0010.jpg")
TWO_PEOPLE = ("_groups", "face_recog_two_people.jpg")


def test_a_much_smaller_background_face_is_fine_a_second_person_is_not(face_engine, face_data: Path) -> None:
    from enrollment.photos import check_photo_file
    from kiosk.face.engine import relative_size

    news, pair = (face_data.joinpath(*name) for name in (BACKGROUND_FACE, TWO_PEOPLE))
    if not news.exists():
        pytest.skip(f"{news} is not in this face data set")
    image = cv2.imread(str(news))
    faces = face_engine.detect_photo(image)
    subject = face_engine.choose(faces, image.shape)
    sizes = sorted(relative_size(f, subject) for f in faces if f is not subject)
    assert len(faces) >= 2 and sizes[-1] < 0.5  # the photo does hold a smaller face in the background
    assert check_photo_file(face_engine, news).reason != "several_faces"
    assert check_photo_file(face_engine, pair).reason == "several_faces"
    # The rule is relative: the same two people, the second shrunk to a bystander's size, pass.
    two = cv2.imread(str(pair))
    both = face_engine.detect_photo(two)
    first = face_engine.choose(both, two.shape)
    other = next(f for f in both if f is not first)
    assert face_engine.crowded(both, first)
    assert not face_engine.crowded([first, shrunk(other, 0.5)], first)


def shrunk(face, area_ratio: float):  # noqa: ANN001, ANN201 - kiosk.face.types.Face
    """The same face with its box scaled about its centre to ``area_ratio`` of its area."""
    from dataclasses import replace

    cx, cy = face.center
    half_w, half_h = face.width / 2 * area_ratio ** 0.5, face.height / 2 * area_ratio ** 0.5
    return replace(face, bbox=np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dtype=np.float32))


def test_models_give_exactly_what_insightface_gives(face_engine, face_photos) -> None:
    """kiosk.face.insightface_models runs the pack's files without the insightface package: boxes, landmarks,
    embeddings and 106 points are bit for bit insightface's own, at every detector size the kiosk uses."""
    from insightface.model_zoo import get_model
    from insightface.utils import face_align

    from kiosk.face.engine import session_options
    from kiosk.face.landmarks import CROP_SCALE, Landmarks106
    from kiosk.face.sessions import PROVIDERS
    pack, opts = face_engine.pack, session_options(face_engine.cfg)
    det, rec, lmk = (get_model(str(p), providers=PROVIDERS, sess_options=opts)
                     for p in (pack.detector, pack.recognizer, pack.landmarks))
    ours = Landmarks106(face_engine)
    photos = face_photos.clean[:12] + face_photos.groups[:2]
    compared = 0
    for photo in photos:
        for size in (640, 224, 160, 320):
            boxes, kpss = face_engine._det.detect(photo.image, input_size=(size, size), det_thresh=0.5)
            want_boxes, want_kpss = det.detect(photo.image, input_size=(size, size), det_thresh=0.5)
            assert np.array_equal(boxes, want_boxes) and np.array_equal(kpss, want_kpss), (photo.name, size)
        aligned = face_align.norm_crop(photo.image, landmark=kpss[0], image_size=112)
        assert np.array_equal(face_engine._rec.get_feat(aligned), rec.get_feat(aligned)), photo.name
        x1, y1, x2, y2 = (float(v) for v in boxes[0][:4])
        crop, matrix = face_align.transform(photo.image, ((x1 + x2) / 2, (y1 + y2) / 2), 192,
                                            192 / (max(x2 - x1, y2 - y1) * CROP_SCALE), 0)
        blob = cv2.dnn.blobFromImage(crop, 1.0 / lmk.input_std, (192, 192), (lmk.input_mean,) * 3, swapRB=True)
        points = (lmk.session.run(lmk.output_names, {lmk.input_name: blob})[0][0].reshape(-1, 2)[-106:] + 1) * 96
        assert np.array_equal(ours(photo.image, boxes[0]),
                              face_align.trans_points(points, cv2.invertAffineTransform(matrix))), photo.name
        compared += 1
    assert compared == len(photos)


def test_a_recogniser_in_the_detector_s_place_is_named(tmp_path: Path) -> None:
    folder = _copy_pack(tmp_path)
    pack = resolve_pack(FaceConfig(pack_dir=folder))
    shutil.copy(pack.recognizer, pack.detector)
    with pytest.raises(ModelError) as err:
        FaceEngine.from_config(FaceConfig(pack_dir=folder))
    assert err.value.what == f"{pack.detector} is not a face detector model"


def test_loading_the_models_does_not_import_insightface() -> None:
    """The engine and the landmark stage load the pack with onnxruntime alone (the insightface package's
    own imports cost ~0.45 CPU-s at every daemon start, the onnx package's ~0.07; `kiosk bench startup` prints
    READY's CPU)."""
    import subprocess
    import sys

    from conftest import REPO
    probe = ("import sys\nfrom kiosk.face.config import FaceConfig\nfrom kiosk.face.engine import FaceEngine\n"
             "from kiosk.face.landmarks import Landmarks106\nengine = FaceEngine.from_config(FaceConfig())\n"
             "engine.warm_up()\nLandmarks106(engine)\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('insightface', 'scipy', 'skimage', 'onnx')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_first_nodes_are_read_as_onnx_reads_them(tmp_path: Path) -> None:
    """The input-scaling rule reads the first node names from the file's protobuf encoding without the onnx
    package: the same names onnx gives, for every graph shipped with either pack; a file that is not an ONNX
    protobuf is refused with ValueError (the engine calls it damaged)."""
    import onnx

    from kiosk.face.insightface_models import first_node_names
    files = sorted(bundled_pack_dir().glob("*.onnx"))
    try:
        files += sorted(bundled_pack_dir("opencv_zoo").glob("*.onnx"))
    except ModelError:
        pass  # the [opencv-zoo] extra is not installed
    for path in files:
        assert first_node_names(path, 8) == [n.name for n in onnx.load(str(path)).graph.node[:8]], path.name
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x3a\xff\xff\xff\xff\x0f")  # field 7, a length past the end
    with pytest.raises(ValueError):
        first_node_names(bad, 8)
