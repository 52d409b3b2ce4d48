"""New hires' photos become templates on their branch's kiosks and are recognised there; leavers vanish.

Real photos from ../shared/faces (fixture face_data), the real face engine on the hub (photos ->
templates with enrollment.photos.check_photo) and on the kiosk (embedding a different photo of
the same person and matching it against the gallery built from the synced roster).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sync_support import CONSENT, start_hub

from kiosk.face.gallery import Gallery
from kiosk.face.images import image_files, read_image
from sync.hub.faces import EngineTemplateMaker

NEW_HIRE, COLLEAGUE = "Ariel_Sharon", "John_Salley"


def photo_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture
def face_hub(hub_config, face_engine):
    hub = start_hub(hub_config, maker=EngineTemplateMaker.from_engines([face_engine]))
    yield hub
    hub.hr.close()
    hub.server.stop()


def recognise(kiosk, engine, photo: Path):
    """What the kiosk's matcher says about ``photo``, with the gallery built from its own store."""
    gallery = Gallery.from_roster(kiosk.store.roster, engine.model_id, kiosk.config.match)
    image = read_image(photo)
    face = engine.choose(engine.detect_photo(image), image.shape)
    return gallery.search(engine.embed(image, face))


def test_new_hire_photo_becomes_a_template_recognised_at_their_branch_only(face_hub, make_kiosk, face_engine,
                                                                           face_data: Path) -> None:
    model = (face_engine.model_id, 512)
    branch_kiosk = make_kiosk("B001", hub=face_hub, model=model)
    other_kiosk = make_kiosk("B002", hub=face_hub, model=model)
    hire_photos = image_files(face_data / NEW_HIRE)
    colleague_photos = image_files(face_data / COLLEAGUE)
    nofaces = image_files(face_data / "_nofaces")

    colleague = face_hub.hr.post("/v1/hr/employees", json={
        "employee_id": "E200", "name": "Colleague", "branches": ["B001"], "consent": CONSENT,
        "photos": [photo_b64(p) for p in colleague_photos[:2]]})
    assert colleague.status_code == 201, colleague.text
    hire = face_hub.hr.post("/v1/hr/employees", json={
        "employee_id": "E100", "name": "New Hire", "branches": ["B001"], "cards": ["0A1B2C3D"], "consent": CONSENT,
        "photos": [photo_b64(p) for p in hire_photos[:2]] + [photo_b64(nofaces[0])]})
    assert hire.status_code == 201, hire.text
    body = hire.json()
    assert body["templates"] == {face_engine.model_id: 2} and body["photos_used"] == 2
    assert [(p["index"], p["reason"].split(":")[0]) for p in body["photos_rejected"]] == [(2, "no_face")]

    assert branch_kiosk.agent.once().errors == {}
    assert other_kiosk.agent.once().errors == {}
    hired = branch_kiosk.store.roster.get("E100")
    # HR sent the card as the hex on it; the kiosk keeps it as its reader reports it (dec10: 0x0A1B2C3D).
    assert hired is not None and hired.active and hired.templates == 2 and hired.cards == ("0169552957",)
    assert branch_kiosk.store.roster.by_card("0a1b2c3d").id == "E100"
    assert other_kiosk.store.roster.get("E100") is None and other_kiosk.store.roster.list() == [], \
        "a second branch never sees them"

    match = recognise(branch_kiosk, face_engine, hire_photos[4])  # a photo the hub never saw
    assert match.employee_id == "E100" and match.accepted, match
    assert recognise(branch_kiosk, face_engine, colleague_photos[4]).employee_id == "E200"

    # The leaver: erased at the branch within one sync (templates overwritten, cards gone).
    gone = face_hub.hr.post("/v1/hr/employees/E100/terminate", json={"reason": "resigned"})
    assert gone.status_code == 200
    report = branch_kiosk.agent.pull_roster()
    assert report.erased == 1
    left = branch_kiosk.store.roster.get("E100")
    assert left is not None and not left.active and left.templates == 0 and left.cards == ()
    assert branch_kiosk.store.query("SELECT count(*) AS n FROM templates WHERE employee_id = 'E100'")[0]["n"] == 0
    assert branch_kiosk.store.roster.by_card("0A1B2C3D") is None
    after = recognise(branch_kiosk, face_engine, hire_photos[4])
    assert after.employee_id != "E100" or not after.accepted
    audit = [a["action"] for a in branch_kiosk.store.audit_log() if a["subject"] == "E100"]
    assert "employee.erase" in audit


def test_the_hub_keeps_the_best_three_photos_of_a_person(face_hub, face_engine, face_data: Path) -> None:
    """Five usable photos: three templates (the best by quality), the other two named not_kept, in the check
    before saving and in the save's report alike."""
    photos = [photo_b64(p) for p in image_files(face_data / NEW_HIRE)[:5]]
    checked = face_hub.hr.post("/v1/hr/photos/check", json={"photos": photos})
    assert checked.status_code == 200, checked.text
    verdicts = checked.json()["photos"]
    spare = [v["index"] for v in verdicts if not v["ok"]]
    assert len(spare) == 2 and all(v["reasons"][0].startswith("not_kept: only the 3 best") for v in verdicts
                                   if not v["ok"]), verdicts
    saved = face_hub.hr.post("/v1/hr/employees", json={
        "employee_id": "E300", "name": "Five Photos", "branches": ["B001"], "consent": CONSENT, "photos": photos})
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["templates"] == {face_engine.model_id: 3} and body["photos_used"] == 3
    assert sorted(p["index"] for p in body["photos_rejected"]) == spare
