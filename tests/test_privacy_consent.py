"""PIPL: a separate consent is recorded for every face enrolment path (who, when, which consent text version,
by whom, where); no consent, no template (the person is card-only); withdrawing it erases the person's
templates at the hub and on every kiosk at its next sync, punches kept; and a per-person report says what the
hub holds (API and `kiosk hub employee report`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sync_support import CONSENT, TEST_DIM, TEST_MODEL
from test_hub_api import register, vector
from test_hub_input_rules import enrolment

from conftest import kiosk_consent
from enrollment.saving import NewTemplate, store_enrolment
from kiosk.base.consent import CONSENT_LANGUAGES, CONSENT_VERSIONS, catalogue_key
from kiosk.base.errors import InvalidInput


def hr_template(seed: int) -> dict:
    return {"model_id": TEST_MODEL, "vector": vector(seed)}


def test_every_consent_text_version_is_in_every_catalogue_in_zh_and_en() -> None:
    from kiosk.ui.i18n import catalogue as kiosk_catalogue
    from sync.hub.console.render import catalogue as console_catalogue
    for version in CONSENT_VERSIONS:
        for lang in CONSENT_LANGUAGES:
            for catalogue in (kiosk_catalogue, console_catalogue):
                text = catalogue(lang).get(catalogue_key(version), "")
                assert len(text) > 100, (version, lang)
        assert kiosk_catalogue("zh")[catalogue_key(version)] == console_catalogue("zh")[catalogue_key(version)]


def test_hr_templates_need_the_persons_consent_and_card_only_is_first_class(hub) -> None:
    register(hub)
    base = {"employee_id": "E1", "name": "Li Na", "branches": ["B001"], "cards": ["00ab12cd"]}
    refused = hub.hr.post("/v1/hr/employees", json={**base, "templates": [hr_template(1)]})
    assert refused.status_code == 422 and "no consent to face recognition" in refused.text
    assert "card-only" in refused.json()["error"]["fix"]
    card_only = hub.hr.post("/v1/hr/employees", json=base)
    assert card_only.status_code == 201 and card_only.json()["templates"] == {} and card_only.json()["notice"] == ""
    late = hub.hr.patch("/v1/hr/employees/E1", json={"templates": [hr_template(2)]})
    assert late.status_code == 422, "still no consent"
    bad_version = hub.hr.patch("/v1/hr/employees/E1", json={"templates": [hr_template(2)],
                                                            "consent": {**CONSENT, "text_version": "v0"}})
    assert bad_version.status_code == 422 and "consent" in bad_version.text
    given = hub.hr.patch("/v1/hr/employees/E1", json={"templates": [hr_template(2)], "consent": CONSENT})
    assert given.status_code == 200 and given.json()["templates"] == {TEST_MODEL: 1}
    report = hub.hr.get("/v1/hr/employees/E1/report").json()
    [consent] = report["consents"]
    assert (consent["kind"], consent["given_utc"], consent["text_version"], consent["language"], consent["path"]) \
        == ("given", CONSENT["given_utc"], CONSENT["text_version"], "zh", "hr_api")
    assert consent["taken_by"].startswith("token:") and report["consent_current"] is True


def test_a_kiosk_enrolment_without_consent_is_refused_by_the_hub(hub) -> None:
    device = register(hub)
    bare = {k: v for k, v in enrolment(1, "E9").items() if k not in ("consent", "consent_path")}
    results = device.post("/v1/device/enrolments", json={"enrolments": [bare, enrolment(2, "E10")]}).json()["results"]
    assert results[0]["status"] == "rejected" and "no consent" in results[0]["reason"]
    assert results[1]["status"] == "stored"
    assert hub.hr.get("/v1/hr/employees/E9").status_code == 404
    [consent] = hub.hr.get("/v1/hr/employees/E10/report").json()["consents"]
    assert consent["path"] == "kiosk_guided" and consent["taken_by"] == f"device:{device.device_id}"


def test_no_consent_no_template_at_the_kiosk_either(fresh_store, kiosk_home) -> None:
    from kiosk.config import load_config
    vec = np.ones(TEST_DIM, np.float32) / np.sqrt(TEST_DIM)
    with pytest.raises(InvalidInput, match="no consent"):
        store_enrolment(fresh_store, load_config(kiosk_home), "E5", "No Consent", None, (), TEST_MODEL,
                        [NewTemplate(vec, 0.8, "guided")], "guided", "admin")
    assert fresh_store.roster.get("E5") is None
    store_enrolment(fresh_store, load_config(kiosk_home), "E6", "Card Only", None, ("00123456",), TEST_MODEL, [],
                    "guided", "admin")  # card-only needs no consent
    assert fresh_store.roster.get("E6").templates == 0 and fresh_store.enrolments.count_unsent() == 0


def test_cli_photos_need_the_consent_taken_by(invoke, kiosk_home, tmp_path) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"never read")
    result = invoke("enroll", "add", "--employee", "E1", "--name", "Li", "--photos", str(photo),
                    "--config", str(kiosk_home))
    assert result.exit_code == 1 and "no consent to face recognition" in result.output
    assert "--consent-taken-by" in result.output and "Traceback" not in result.output
    text = invoke("enroll", "consent-text")
    assert text.exit_code == 0 and CONSENT_VERSIONS[-1] in text.output and "[zh]" in text.output


def faces(kiosk, employee_id: str) -> int:
    return sum(t.employee_id == employee_id for t in kiosk.store.roster.templates(TEST_MODEL))


def test_withdrawal_erases_the_faces_everywhere_and_keeps_the_punches(hub, make_kiosk, invoke) -> None:
    enrolling, colleague = make_kiosk(hub=hub), make_kiosk(hub=hub)
    for kiosk in (enrolling, colleague):
        assert kiosk.agent.once().errors == {}
    body = {"employee_id": "E30", "name": "Wang Fang", "branches": ["B001"], "cards": ["00ab12cd"],
            "templates": [hr_template(3)], "consent": CONSENT}
    assert hub.hr.post("/v1/hr/employees", json=body).status_code == 201
    assert enrolling.agent.once().errors == {}
    vec = np.random.default_rng(9).normal(size=TEST_DIM).astype(np.float32)
    store_enrolment(enrolling.store, enrolling.config, "E30", "Wang Fang", None, [], TEST_MODEL,
                    [NewTemplate(vec / np.linalg.norm(vec), 0.8, "guided")], "guided", "kiosk-admin",
                    consent=kiosk_consent())
    approved = hub.hr.post("/v1/hr/employees/E30/device-templates/approve", json={})
    assert approved.status_code == 404, "not at the hub yet"
    enrolling.punch("E30", 3)
    assert enrolling.agent.once().errors == {}
    assert hub.hr.post("/v1/hr/employees/E30/device-templates/approve", json={}).status_code == 200
    assert colleague.agent.once().errors == {}
    assert faces(enrolling, "E30") == 2 and faces(colleague, "E30") == 2

    withdrawn = hub.hr.post("/v1/hr/employees/E30/consent/withdraw", json={"taken_by": "Zhang HR"})
    assert withdrawn.status_code == 200 and withdrawn.json()["templates"] == {}
    assert withdrawn.json()["active"] and "00AB12CD" in withdrawn.json()["cards"], "card-only from now on"
    for kiosk in (enrolling, colleague):
        assert kiosk.agent.once().errors == {}
        assert faces(kiosk, "E30") == 0, "erased on the next sync, the enrolling kiosk's own faces too"
        assert kiosk.store.roster.get("E30").active and kiosk.store.roster.get("E30").cards
    report = hub.hr.get("/v1/hr/employees/E30/report").json()
    assert [c["kind"] for c in report["consents"]] == ["given", "given", "withdrawn"]
    assert report["consents"][-1]["taken_by"] == "Zhang HR" and report["consent_current"] is False
    assert report["templates"] == [] and report["punches"]["count"] == 3, "punches are kept"
    again = hub.hr.patch("/v1/hr/employees/E30", json={"templates": [hr_template(4)]})
    assert again.status_code == 422 and "withdrew" in again.text


def test_the_report_says_what_the_hub_holds(hub, make_kiosk, invoke, tmp_path) -> None:
    kiosk = make_kiosk(hub=hub)
    assert kiosk.agent.once().errors == {}
    body = {"employee_id": "E40", "name": "Li Lei", "branches": ["B001"], "cards": ["00ab12ce"],
            "templates": [hr_template(5), hr_template(6)], "consent": {**CONSENT, "language": "en"}}
    assert hub.hr.post("/v1/hr/employees", json=body).status_code == 201
    kiosk.punch("E40", 2)
    assert kiosk.agent.once().errors == {}
    report = hub.hr.get("/v1/hr/employees/E40/report").json()
    assert [(m["model_id"], m["templates"], m["sources"]) for m in report["templates"]] == [(TEST_MODEL, 2,
                                                                                               {"hr": 2})]
    assert report["punches"]["count"] == 2 and report["punches"]["devices"] == 1
    assert report["punches"]["first_utc"] <= report["punches"]["last_utc"]
    assert report["photos_kept"] is False and "vector" not in json.dumps(report)
    assert report["consents"][0]["language"] == "en"
    assert hub.hr.get("/v1/hr/employees/NOPE/report").status_code == 404
    trail = [a["action"] for a in hub.hr.get("/v1/hr/audit", params={"target": "E40"}).json()]
    assert "employee.report" in trail, "an access to the report is audited"

    from kiosk.cli.hub_console import report_lines
    from sync.hub.report import person_report
    lines = report_lines(person_report(hub.db, "E40"))
    assert any("consent to face recognition: on file" in line for line in lines)
    assert any(f"model {TEST_MODEL[:12]}: 2 (hr 2)" in line for line in lines)
    assert any(line.startswith("punches: 2,") for line in lines)


def test_kiosk_hub_employee_report_and_withdraw_consent_on_the_command_line(invoke, tmp_path) -> None:
    from sync.hub import people
    from sync.hub.config import load_hub_config
    from sync.hub.db import hub_db
    from sync.protocol import EmployeeIn
    assert invoke("hub", "init", str(tmp_path / "hub")).exit_code == 0
    config = str(tmp_path / "hub" / "hub.toml")
    with hub_db(load_hub_config(config).database, migrate=True) as db:
        people.create_employee(db, EmployeeIn(employee_id="E1", name="Li Na", branches=["B001"]),
                               people.Templates([], 0, [], []))
    shown = invoke("hub", "employee", "report", "E1", "--config", config)
    assert shown.exit_code == 0 and "consent to face recognition: none (card-only)" in shown.output
    assert "punches: 0" in shown.output and "photos kept: none" in shown.output
    withdrawn = invoke("hub", "employee", "withdraw-consent", "E1", "--taken-by", "Zhang HR", "--config", config)
    assert withdrawn.exit_code == 0 and "consent withdrawn" in withdrawn.output
    as_json = invoke("hub", "employee", "report", "E1", "--json", "--config", config)
    report = json.loads(as_json.output.strip().splitlines()[-1])
    assert [c["kind"] for c in report["consents"]] == ["withdrawn"] and report["consents"][0]["taken_by"] == "Zhang HR"
    missing = invoke("hub", "employee", "report", "E404", "--config", config)
    assert missing.exit_code == 1 and "no employee E404" in missing.output
