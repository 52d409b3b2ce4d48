"""Faces enrolled at a kiosk stay in its branch until HR approves them: the attack from issue 15 (a kiosk
enrols a new id with its own vector, HR later creates that id for another branch, and the other branch
received the kiosk's face), faces for someone HR manages held for approval, and HR's drop erasing them
everywhere, the enrolling kiosk included."""

from __future__ import annotations

import numpy as np
from sync_support import CONSENT, TEST_DIM, TEST_MODEL

from conftest import kiosk_consent
from enrollment.saving import NewTemplate, store_enrolment


def unit(seed: int) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=TEST_DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def enrol_at(kiosk, employee_id: str, vec: np.ndarray) -> None:
    store_enrolment(kiosk.store, kiosk.config, employee_id, "Kiosk Enrolled", None, [], TEST_MODEL,
                    [NewTemplate(vec, 0.8, "guided")], "guided", "kiosk-admin",
                    consent=kiosk_consent())
    assert kiosk.agent.once().errors == {}


def faces(kiosk, employee_id: str) -> list[tuple[str, float]]:
    """(source, first value) of the person's templates on a kiosk: which vectors it holds."""
    return sorted((t.source, round(float(t.vector[0]), 5)) for t in kiosk.store.roster.templates(TEST_MODEL)
                  if t.employee_id == employee_id)


def hr_template(vec: np.ndarray) -> dict:
    """One template HR sends (with the person's consent, CONSENT)."""
    return {"model_id": TEST_MODEL, "vector": vec.tolist()}


def test_a_kiosk_face_never_reaches_another_branch_when_hr_creates_that_id_there(hub, make_kiosk) -> None:
    enrolling, colleague, other = make_kiosk(hub=hub), make_kiosk(hub=hub), make_kiosk("B002", hub=hub)
    for kiosk in (enrolling, colleague, other):
        assert kiosk.agent.once().errors == {}
    planted, hr_face = unit(1), unit(2)
    enrol_at(enrolling, "E50", planted)
    device_id = enrolling.agent.state.require_registration().device_id

    created = hub.hr.post("/v1/hr/employees", json={"employee_id": "E50", "name": "New Hire", "branches": ["B002"],
                                                    "templates": [hr_template(hr_face)], "consent": CONSENT})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["branches"] == ["B002"] and body["name"] == "New Hire"
    assert [(d["device_id"], d["branch"], d["templates"], d["state"]) for d in body["device_templates"]] \
        == [(device_id, "B001", 1, "scoped")]
    assert "not sent to any other branch" in body["notice"] and "drop" in body["notice"]
    assert other.agent.once().errors == {}
    assert faces(other, "E50") == [("hub", round(float(hr_face[0]), 5))], "only HR's face, never the kiosk's"

    # Adding the kiosk's branch back: its colleagues use its face, the other branch still does not.
    patched = hub.hr.patch("/v1/hr/employees/E50", json={"branches": ["B001", "B002"]})
    assert patched.status_code == 200 and patched.json()["device_templates"][0]["state"] == "scoped"
    assert colleague.agent.once().errors == {} and other.agent.once().errors == {}
    assert len(faces(colleague, "E50")) == 2 and len(faces(other, "E50")) == 1

    approved = hub.hr.post("/v1/hr/employees/E50/device-templates/approve", json={})
    assert approved.status_code == 200 and approved.json()["device_templates"][0]["state"] == "approved"
    assert approved.json()["notice"] == ""
    assert other.agent.once().errors == {} and len(faces(other, "E50")) == 2, "approved: wherever they work"


def test_kiosk_faces_for_an_hr_employee_are_held_and_a_drop_erases_them_everywhere(hub, make_kiosk) -> None:
    enrolling, colleague = make_kiosk(hub=hub), make_kiosk(hub=hub)
    for kiosk in (enrolling, colleague):
        assert kiosk.agent.once().errors == {}
    hr_face, kiosk_face = unit(3), unit(4)
    known = {"employee_id": "E60", "name": "Known", "branches": ["B001"], "templates": [hr_template(hr_face)],
             "consent": CONSENT}
    assert hub.hr.post("/v1/hr/employees", json=known).status_code == 201
    assert enrolling.agent.once().errors == {}
    enrol_at(enrolling, "E60", kiosk_face)
    person = hub.hr.get("/v1/hr/employees/E60").json()
    assert [d["state"] for d in person["device_templates"]] == ["held"] and "held for approval" in person["notice"]
    assert colleague.agent.once().errors == {}
    assert faces(colleague, "E60") == [("hub", round(float(hr_face[0]), 5))], "held: no other kiosk uses it"
    assert len(faces(enrolling, "E60")) == 2  # its own enrolment, until HR decides

    dropped = hub.hr.post("/v1/hr/employees/E60/device-templates/drop", json={})
    assert dropped.status_code == 200 and dropped.json()["device_templates"] == []
    assert dropped.json()["templates"] == {TEST_MODEL: 1}
    assert enrolling.agent.once().errors == {}
    assert faces(enrolling, "E60") == [("hub", round(float(hr_face[0]), 5))], "the enrolling kiosk erased its own"
    again = hub.hr.post("/v1/hr/employees/E60/device-templates/drop", json={})
    assert again.status_code == 404 and "no kiosk-enrolled templates" in again.text
    trail = [a["action"] for a in hub.hr.get("/v1/hr/audit", params={"target": "E60"}).json()]
    assert "templates.drop" in trail


def test_hr_can_drop_kiosk_faces_in_the_same_request_that_creates_the_person(hub, make_kiosk) -> None:
    enrolling = make_kiosk(hub=hub)
    assert enrolling.agent.once().errors == {}
    enrol_at(enrolling, "E70", unit(5))
    created = hub.hr.post("/v1/hr/employees", json={"employee_id": "E70", "name": "Card Only", "branches": ["B001"],
                                                    "drop_device_templates": True})
    assert created.status_code == 201 and created.json()["templates"] == {} and created.json()["notice"] == ""
    assert enrolling.agent.once().errors == {} and faces(enrolling, "E70") == []
    # Now HR's: a second POST is a conflict again, not another take-over.
    assert hub.hr.post("/v1/hr/employees", json={"employee_id": "E70", "name": "X", "branches": []}).status_code == 409


def test_hr_sees_and_approves_kiosk_faces_on_the_console_employee_page(hub, make_kiosk) -> None:
    from console_support import add_user, signed_in
    enrolling = make_kiosk(hub=hub)
    assert enrolling.agent.once().errors == {}
    enrol_at(enrolling, "E80", unit(6))
    device_id = enrolling.agent.state.require_registration().device_id
    console = signed_in(hub, add_user(hub, "hr1", "hr_admin"))
    page = console.get("/employees/E80")
    assert page.status_code == 200 and 'id="device-faces"' in page.text and device_id in page.text
    assert "This branch only" in page.text
    csrf = console.headers["X-CSRF-Token"]
    done = console.post("/employees/E80/device-templates/approve", data={"csrf": csrf, "device_id": device_id})
    assert done.status_code == 303 and done.headers["location"].endswith("done=approved")
    assert hub.hr.get("/v1/hr/employees/E80").json()["device_templates"][0]["state"] == "approved"
    refused = console.post("/employees/E80/device-templates/approve", data={"csrf": "wrong", "device_id": device_id})
    assert refused.status_code == 403
