"""Guided capture on real photos used as camera frames: guidance from the quality gate, varied
samples, the 1:N duplicate check before saving, the self-test, and `kiosk enroll add --camera`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_support import darkened, downscaled

from conftest import CONSENT_ARGS, kiosk_consent, run_kiosk
from enrollment.guided import GuidedEnrolment, GuidedSettings, Person, Phase
from enrollment.saving import NewTemplate, store_enrolment
from kiosk.config import load_config
from kiosk.face.conditions import CONDITIONS
from kiosk.face.config import MatchConfig
from kiosk.face.gallery import Gallery
from kiosk.face.images import image_files, read_image

MAX_FRAMES = 80


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frames(face_data: Path, identity: str) -> list[np.ndarray]:
    return [read_image(p) for p in image_files(face_data / identity)]


def session_for(engine, gallery: Gallery, employee_id: str, saved: dict, clock=None, **settings):  # noqa: ANN001, ANN201
    """A GuidedEnrolment whose save puts the samples into ``gallery`` (the store is tested below)."""

    def save(samples, look_alikes) -> int:  # noqa: ANN001
        saved[employee_id] = samples
        saved[f"{employee_id}:look_alikes"] = look_alikes
        for sample in samples:
            gallery.add(employee_id, sample.vector)
        return len(samples)

    options = {"min_interval_s": 0.0, **settings}
    return GuidedEnrolment(engine, gallery, Person(employee_id, "Test Person"), MatchConfig(), save, lambda: gallery,
                           GuidedSettings(**options), clock=clock or Clock())


def run(session: GuidedEnrolment, images: list[np.ndarray]) -> list[str]:
    seen = []
    for image in itertools.islice(itertools.cycle(images), MAX_FRAMES):
        session.feed(image)
        seen.append(session.progress().guidance)
        if session.finished or session.phase is Phase.CONFIRM:
            break
    return seen


def test_varied_samples_are_saved_then_recognised(face_engine, face_data: Path) -> None:
    gallery, saved = Gallery(face_engine.model_id), {}
    session = session_for(face_engine, gallery, "E100", saved)
    run(session, frames(face_data, "Colin_Powell"))
    progress = session.progress()
    assert progress.phase is Phase.DONE and progress.recognised_as == "E100"
    assert progress.templates_saved == 5 and len(saved["E100"]) == 5
    vectors = np.stack([s.vector for s in saved["E100"]])
    similarity = vectors @ vectors.T
    assert np.all(similarity[~np.eye(5, dtype=bool)] <= 0.93)  # no two samples alike


def test_the_same_picture_again_is_not_a_new_sample(face_engine, face_data: Path) -> None:
    session = session_for(face_engine, Gallery(face_engine.model_id), "E101", {})
    still = frames(face_data, "Colin_Powell")[0]
    for _ in range(6):
        session.feed(still)
    progress = session.progress()
    assert progress.samples == 1 and progress.guidance == "turn_slightly"


@pytest.mark.parametrize(("make", "guidance"), [
    (lambda image, face: downscaled(image, face.width), "move_closer"),
    (lambda image, face: darkened(image, face.width), "too_dark"),
    (lambda image, face: np.full_like(image, 128), "look_at_camera"),
    (lambda image, face: CONDITIONS["mask"](image, face, 0), "lower_mask"),
    (lambda image, face: CONDITIONS["sunglasses"](image, face, 0), "remove_sunglasses"),
])
def test_guidance_comes_from_the_quality_gate(face_engine, face_data: Path, make, guidance: str) -> None:  # noqa: ANN001
    image = read_image(face_data / "Colin_Powell" / "Colin_Powell_0001.jpg")
    face = face_engine.choose(face_engine.detect(image), image.shape)
    session = session_for(face_engine, Gallery(face_engine.model_id), "E102", {})
    observation = session.feed(make(image, face))
    assert session.progress().guidance == guidance and not observation.usable
    assert session.progress().samples == 0


def test_two_people_in_the_picture_are_told_apart(face_engine, face_data: Path) -> None:
    session = session_for(face_engine, Gallery(face_engine.model_id), "E103", {})
    session.feed(read_image(face_data / "_groups" / "face_recog_two_people.jpg"))
    assert session.progress().guidance == "one_person"


def test_an_enrolled_face_is_flagged_before_saving(face_engine, face_data: Path) -> None:
    photos = frames(face_data, "Vladimir_Putin")
    gallery, saved = Gallery(face_engine.model_id), {}
    for image in photos[:2]:
        gallery.add("E0123", face_engine.embed(image, face_engine.choose(face_engine.detect(image), image.shape)))
    session = session_for(face_engine, gallery, "E200", saved)
    run(session, photos[2:])
    progress = session.progress()
    assert progress.phase is Phase.CONFIRM and "E200" not in saved
    assert progress.warning.kind == "other_employee" and progress.warning.employee_id == "E0123"
    assert progress.warning.score >= MatchConfig().threshold
    session.confirm(False)
    assert session.progress().phase is Phase.CANCELLED and "E200" not in saved and not session.samples


def test_the_admin_may_save_a_flagged_face_anyway(face_engine, face_data: Path) -> None:
    photos = frames(face_data, "Vladimir_Putin")
    gallery, saved = Gallery(face_engine.model_id), {}
    image = photos[0]
    gallery.add("E0123", face_engine.embed(image, face_engine.choose(face_engine.detect(image), image.shape)))
    session = session_for(face_engine, gallery, "E201", saved)
    run(session, photos[1:])
    session.confirm(True)
    assert len(saved["E201"]) == 5 and session.progress().phase is Phase.SELF_TEST
    # Saved although the engine cannot tell the two apart: both are look-alikes (card + face from now on).
    assert [a.employee_id for a in saved["E201:look_alikes"]] == ["E0123"]
    shown = session.progress().to_dict()["look_alikes"]
    assert [a["employee_id"] for a in shown] == ["E0123"] and shown[0]["score"] >= gallery.cfg.threshold


def test_capture_gives_up_after_its_timeout(face_engine) -> None:
    clock = Clock()
    session = session_for(face_engine, Gallery(face_engine.model_id), "E104", {}, clock=clock, capture_timeout_s=10)
    session.feed(np.full((240, 320, 3), 128, np.uint8))
    clock.now = 11
    progress = session.progress()
    assert progress.phase is Phase.FAILED and progress.failure == "capture_timeout"


def test_saving_goes_through_the_store_and_the_hub_queue(face_engine, face_data: Path, fresh_store, kiosk_home) -> None:
    config = load_config(kiosk_home, ["sync.hub_url=https://hub.example.test"])
    image = frames(face_data, "Colin_Powell")[0]
    vector = face_engine.embed(image, face_engine.choose(face_engine.detect(image), image.shape))
    ids = store_enrolment(fresh_store, config, "E300", "Colin P", None, ("00123456",), face_engine.model_id,
                          [NewTemplate(vector, 0.8, "guided")], "guided", "kiosk-admin",
                          consent=kiosk_consent())
    employee = fresh_store.roster.get("E300")
    assert employee.templates == 1 and employee.cards == ("0000123456",) and employee.branch == "B001"  # as read
    queued = fresh_store.query("SELECT * FROM enrolment_outbox")
    assert [(q["employee_id"], json.loads(q["template_ids"]), q["source"]) for q in queued] == [("E300", ids, "device")]
    assert fresh_store.audit_log(1)[0]["action"] == "enroll.guided"
    pending = fresh_store.enrolments.unsent()
    assert [(p["employee_id"], p["name"], p["cards"], [t["id"] for t in p["templates"]]) for p in pending] == \
        [("E300", "Colin P", ["0000123456"], ids)]
    assert np.allclose(pending[0]["templates"][0]["vector"], vector / np.linalg.norm(vector))
    fresh_store.enrolments.mark_sent([pending[0]["outbox_id"]])
    assert fresh_store.enrolments.unsent() == [] and fresh_store.enrolments.count_unsent() == 0


def test_without_a_hub_the_enrolment_waits_in_the_queue(face_engine, fresh_store, kiosk_home) -> None:
    vector = np.ones(512, np.float32) / np.sqrt(512)
    store_enrolment(fresh_store, load_config(kiosk_home), "E301", "No Hub", None, (), face_engine.model_id,
                    [NewTemplate(vector, 0.5, "guided")], "guided", "admin", consent=kiosk_consent())
    assert fresh_store.enrolments.count_unsent() == 1 and fresh_store.roster.get("E301").templates == 1
    fresh_store.roster.erase("E301", reason="left before the kiosk was registered")
    assert fresh_store.enrolments.count_unsent() == 0  # an erased face is never sent


def scene(folder: Path, images: list[np.ndarray]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return f"images:{folder}?fps=0&loop=1"


def employee(kiosk_home: Path, employee_id: str) -> dict | None:
    listing = run_kiosk("employee", "list", "--all", "--json", "--config", str(kiosk_home), check=True)
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    return next((r for r in rows if r["id"] == employee_id), None)


def test_enroll_add_camera_in_a_terminal(kiosk_home: Path, face_data: Path, tmp_path: Path) -> None:
    source = scene(tmp_path / "cam", frames(face_data, "John_Simm")[:8])
    done = run_kiosk("enroll", "add", "--camera", *CONSENT_ARGS, "--employee", "E400", "--name", "John Simm",
                     "--config", str(kiosk_home), "--set", f"camera.source={source}")
    assert done.returncode == 0, done.stderr
    assert "Good — sample taken (4 of 5)" in done.stdout and "saved 5 samples of E400" in done.stdout
    assert "enrolment complete (5 samples)" in done.stdout
    assert employee(kiosk_home, "E400")["templates"] == 5
    again = run_kiosk("enroll", "add", "--camera", *CONSENT_ARGS, "--employee", "E401", "--name", "Someone Else",
                      "--config",
                      str(kiosk_home), "--set", f"camera.source={source}", input_text="n\n")
    assert again.returncode == 1
    assert "already matches employee E400 John Simm" in again.stdout and "nothing was saved for E401" in again.stderr
    assert employee(kiosk_home, "E401") is None


def test_enroll_add_camera_without_a_camera_says_what_to_do(kiosk_home: Path) -> None:
    result = run_kiosk("enroll", "add", "--camera", *CONSENT_ARGS, "--employee", "E402", "--name", "X Y", "--config",
                       str(kiosk_home))
    assert result.returncode == 1 and "no camera is configured" in result.stderr and "Traceback" not in result.stderr


def test_look_alikes_are_stored_as_card_and_face_with_the_enrolment(face_engine, fresh_store, kiosk_home) -> None:
    from enrollment.photos import LookAlike
    from kiosk.config import load_config

    config = load_config(kiosk_home)
    vec = np.ones(512, np.float32) / np.sqrt(512)
    store_enrolment(fresh_store, config, "E300", "First Twin", None, (), face_engine.model_id,
                    [NewTemplate(vec, 0.9, "guided")], "guided", "test", consent=kiosk_consent())
    store_enrolment(fresh_store, config, "E301", "Second Twin", None, (), face_engine.model_id,
                    [NewTemplate(vec, 0.9, "guided")], "guided", "test", look_alikes=[LookAlike("E300", 0.97)],
                    consent=kiosk_consent())
    store_enrolment(fresh_store, config, "E302", "Someone Else", None, (), face_engine.model_id,
                    [NewTemplate(-vec, 0.9, "guided")], "guided", "test", consent=kiosk_consent())
    marked = {e.id: e.card_and_face for e in fresh_store.roster.list()}
    assert marked == {"E300": True, "E301": True, "E302": False}
    reasons = [r["detail"] for r in fresh_store.audit_log(10) if r["action"] == "employee.card_and_face_on"]
    assert any("look-alike of E301" in r for r in reasons)
