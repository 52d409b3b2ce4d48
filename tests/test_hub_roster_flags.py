"""Punches for someone not on the device's branch roster, or for an id the hub does not know: stored, flagged
(hub_flags not_on_roster / unknown_employee) and raised as a device issue HR sees; a kiosk enrolment of that
id explains them, whichever arrives first."""

from __future__ import annotations

import json

import numpy as np
from sync_support import TEST_DIM, TEST_MODEL
from test_hub_api import register, upload
from test_hub_input_rules import enrolment
from test_sync_protocol import chain

from conftest import kiosk_consent
from enrollment.saving import NewTemplate, store_enrolment
from sync.hub.ingest import ROSTER_FLAGS


def roster_flag(row: dict) -> str:
    """The punch's roster flags (these test devices sign nothing, so their punches are also 'unsigned')."""
    return ",".join(f for f in row["hub_flags"].split(",") if f in ROSTER_FLAGS)


def person_issues(hub, device_id: str) -> list[tuple]:
    issues = hub.hr.get(f"/v1/hr/devices/{device_id}").json()["issues"]
    return sorted((i["kind"], i["employee_id"], i["seq_from"], i["seq_to"], i["resolved_utc"] is None)
                  for i in issues if i["employee_id"])


def test_punches_for_another_branch_or_an_unknown_id_are_stored_flagged_and_raised(hub) -> None:
    device = register(hub)
    hub.hire("E1", "B001")
    hub.hire("E2", "B002")
    records = chain(1, employee_id="E1") + []
    for employee_id in ("E2", "E404", "E1", "E404"):
        records += chain(1, start_seq=len(records) + 1, prev=records[-1]["hash"], employee_id=employee_id)
    assert upload(device, records)["accepted"] == 5
    flags = {row["seq"]: roster_flag(row) for row in hub.export()}
    assert flags == {1: "", 2: "not_on_roster", 3: "unknown_employee", 4: "", 5: "unknown_employee"}
    assert person_issues(hub, device.device_id) == [("not_on_roster", "E2", 2, 2, True),
                                                     ("unknown_employee", "E404", 3, 5, True)]
    details = {i["kind"]: i["detail"] for i in hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()["issues"]
               if i["employee_id"]}
    assert details == {
        "not_on_roster": "punches for E2, who is not on branch B001's roster: stored and flagged not_on_roster "
                         "(assign them to the branch, or check the kiosk)",
        "unknown_employee": "punches for E404, an id the hub does not know: stored and flagged unknown_employee "
                            "(create the employee, or check the kiosk)"}
    # More punches for the same person widen the open issue instead of raising a new one each batch.
    more = chain(1, start_seq=6, prev=records[-1]["hash"], employee_id="E404")
    upload(device, more)
    assert ("unknown_employee", "E404", 3, 6, True) in person_issues(hub, device.device_id)
    listed = hub.hr.get("/v1/hr/devices").json()
    assert next(d for d in listed if d["device_id"] == device.device_id)["open_issues"] == 2
    picked = hub.hr.get("/v1/hr/punches", params={"flag": "unknown_employee"})
    assert [json.loads(line)["seq"] for line in picked.text.splitlines()] == [3, 5, 6]
    # A terminated person is not on any roster either.
    assert hub.hr.post("/v1/hr/employees/E1/terminate", json={"reason": "left"}).status_code == 200
    upload(device, chain(1, start_seq=7, prev=more[-1]["hash"], employee_id="E1"))
    assert {row["seq"]: roster_flag(row) for row in hub.export()}[7] == "not_on_roster"


def test_a_kiosk_enrolment_arriving_after_the_punch_resolves_the_flag(hub) -> None:
    """The agent sends enrolments first, but a kiosk whose enrolment failed, or an older agent, punches first:
    the enrolment, when it arrives, takes the flag off and resolves the issue (kept for the record)."""
    device = register(hub)
    records = chain(2, employee_id="E9")
    upload(device, records)
    assert [roster_flag(row) for row in hub.export()] == ["unknown_employee"] * 2
    resp = device.post("/v1/device/enrolments", json={"enrolments": [enrolment(1, "E9")]})
    assert resp.json()["results"][0]["status"] == "stored", resp.text
    assert [roster_flag(row) for row in hub.export()] == ["", ""]
    assert all(row["hub_flags"] == "unsigned" for row in hub.export()), "the hub's other flags stay"
    assert person_issues(hub, device.device_id) == [("unknown_employee", "E9", 1, 2, False)]
    upload(device, chain(1, start_seq=3, prev=records[-1]["hash"], employee_id="E9"))
    assert roster_flag(hub.export()[-1]) == "", "now on the roster"


def enrol_at(kiosk, employee_id: str) -> None:
    vec = np.random.default_rng(7).normal(size=TEST_DIM).astype(np.float32)
    store_enrolment(kiosk.store, kiosk.config, employee_id, "Just Enrolled", None, [], TEST_MODEL,
                    [NewTemplate(vec / np.linalg.norm(vec), 0.8, "guided")], "guided", "kiosk-admin",
                    consent=kiosk_consent())


def test_the_agent_sends_a_new_enrolment_before_the_punch_that_follows_it(hub, make_kiosk) -> None:
    """The trap: pushing punches before enrolments flagged a person enrolled a minute ago as unknown. Both
    ways the agent sends: one full round (`once`) and the push job alone (woken by the new punch)."""
    kiosk = make_kiosk(hub=hub)
    assert kiosk.agent.once().errors == {}
    enrol_at(kiosk, "E70")
    kiosk.punch("E70")
    assert kiosk.agent.once().errors == {}
    enrol_at(kiosk, "E71")
    kiosk.punch("E71")
    assert kiosk.agent.push().accepted == 1
    assert kiosk.store.enrolments.count_unsent() == 0
    assert {row["employee_id"]: row["hub_flags"] for row in hub.export()} == {"E70": "", "E71": ""}  # signed
    assert person_issues(hub, kiosk.agent.state.require_registration().device_id) == []
