"""The Frappe HRMS connector against a local stand-in site, on SQLite and PostgreSQL.

The stand-in (sync/hub/outbound/frappe_standin.py) follows Frappe's public source:
hrms/hr/doctype/employee_checkin/employee_checkin.py (``add_log_based_on_employee_field``: required
fields, lookup by ``employee_fieldname``, the duplicate rule on employee + time + log type, time cut to
the second), hrms/hr/utils.py (``validate_active_employee``: status 'Inactive' is refused with
InactiveEmployeeStatusError), hrms/hr/doctype/shift_type/shift_type.py (auto-attendance only processes
checkins of shifts ended before ``last_sync_of_checkin``), frappe/handler.py (a wrong method path is
"Failed to get method for command"), frappe/api.py and frappe/utils/response.py (``/api/resource``
paging and filters, token auth, error JSON with ``exc_type`` and ``_server_messages``, 417 for
ValidationError).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from outbound_support import FakeClock, punches, register, upload
from sync_support import TEST_MODEL, hub_config_data, start_hub

from kiosk.base.record import punch_hash
from kiosk.base.timeutil import iso_utc, parse_iso
from kiosk.face.images import image_files
from kiosk.tools.frappe_standin import FrappeSite, FrappeStandIn
from sync.hub import people
from sync.hub.config import validate_hub_config
from sync.hub.faces import EngineTemplateMaker, NoTemplateMaker
from sync.hub.outbound import frappe, queue
from sync.hub.outbound.service import build_engine

ZONE = "Asia/Shanghai"


@pytest.fixture
def site():
    standin = FrappeSite()
    standin.add_employee("HR-EMP-00001", attendance_device_id="E1", branch="Pudong")
    standin.add_employee("HR-EMP-00002", attendance_device_id="E2", branch="Pudong", status="Inactive")
    standin.shift_types["Day Shift"] = {"last_sync_of_checkin": None}
    with FrappeStandIn(standin) as server:
        standin.url = server.url
        yield standin


def frappe_settings(site, tmp_path: Path, **extra) -> dict:
    token = tmp_path / "frappe.token"
    token.write_text(f"{site.api_key}:{site.api_secret}\n")
    os.chmod(token, 0o600)
    return {"enabled": True, "url": site.url, "token_file": str(token), "time_zone": ZONE,
            "shift_types": ["Day Shift"], "branch_map": {"Pudong": "B001"}, **extra}


@pytest.fixture
def make_hub(hub_backend, tmp_path, request):
    made = []

    def _make(site, maker=None, **frappe_extra):
        data = hub_config_data(hub_backend, tmp_path, request)
        data["outbound"] = {"enabled": False, "concurrency": 1}  # calls in a known order
        data["connectors"] = {"frappe": frappe_settings(site, tmp_path, **frappe_extra)}
        config = validate_hub_config(data, "test", tmp_path)
        hub = start_hub(config, maker=maker)
        made.append(hub)
        clock = FakeClock()
        engine = build_engine(config, hub.db, maker or NoTemplateMaker(), clock=clock)
        return hub, engine, clock

    yield _make
    for hub in made:
        hub.hr.close()
        hub.server.stop()


def drain(engine, clock, rounds: int = 100) -> None:
    """Deliver what is due, the engine's clock set a second past what the hub just queued (at real time)."""
    clock.catch_up()
    for _ in range(rounds):
        if engine.deliver_due().attempted == 0:
            return
    raise AssertionError("the queue did not settle")


def local(ts_utc: str) -> str:
    return parse_iso(ts_utc).astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")


def test_punches_become_employee_checkins_in_hrms_local_time(site, make_hub) -> None:
    hub, engine, clock = make_hub(site)
    device = register(hub.url, hub.code())
    records = punches(["E1", "E2", "E3", "E1"])
    records[3]["lat"], records[3]["lon"] = 31.2304, 121.4737
    records[3]["prev_hash"] = records[2]["hash"]
    records[3]["hash"] = punch_hash(records[3])
    site.add_log({"employee_field_value": "E1", "timestamp": local(records[0]["ts_utc"])})  # already there
    site.fail_next = [500]  # the HRMS has a bad moment on the first call
    upload(device, records)
    drain(engine, clock)
    clock.advance(60)
    drain(engine, clock)
    checkins = [(c["employee"], str(c["time"]), c["log_type"], c["device_id"]) for c in site.checkins]
    assert checkins == [("HR-EMP-00001", local(records[0]["ts_utc"]), None, None),
                        ("HR-EMP-00001", local(records[3]["ts_utc"]), None, device.device_id)]
    assert site.checkins[1]["latitude"] == 31.2304 and site.checkins[1]["longitude"] == 121.4737
    rows = {r["event_id"]: r for r in queue.list_deliveries(hub.db, subscription=frappe.SUBSCRIPTION_ID)}
    assert rows[records[0]["id"]]["status"] == "delivered", "Frappe's duplicate answer counts as delivered"
    assert rows[records[0]["id"]]["attempts"] == 2, "the 500 was retried"
    assert rows[records[1]["id"]]["status"] == "parked"
    assert rows[records[1]["id"]]["last_error"] == "employee E2 is Inactive in the HRMS"
    assert rows[records[2]["id"]]["status"] == "parked"
    assert rows[records[2]["id"]]["last_error"] == "no Employee in the HRMS has attendance_device_id = E3"
    assert rows[records[3]["id"]]["status"] == "delivered"


def test_configuration_mistakes_are_retried_with_the_fix_in_the_error(site, make_hub) -> None:
    site.prefix = "erpnext"  # a v13 site: the method lives under erpnext.
    hub, engine, clock = make_hub(site)
    device = register(hub.url, hub.code())
    upload(device, punches(["E1"]))
    drain(engine, clock)
    [row] = queue.list_deliveries(hub.db)
    assert row["status"] == "pending" and "method_prefix" in row["last_error"]
    site.api_secret = "rotated-in-the-hrms"
    site.prefix = "hrms"
    clock.advance(60)
    drain(engine, clock)
    [row] = queue.list_deliveries(hub.db)
    assert row["status"] == "pending" and "refused the API key (HTTP 401)" in row["last_error"]
    assert site.checkins == []


def test_last_sync_of_checkin_follows_the_kiosks_known_complete(site, make_hub) -> None:
    hub, engine, clock = make_hub(site)
    device = register(hub.url, hub.code())
    upload(device, punches(["E1"]))
    drain(engine, clock)
    assert site.shift_types["Day Shift"]["last_sync_of_checkin"] is None, "no kiosk has vouched for its backlog"
    beat = {"software_version": "0.1.0", "model_id": TEST_MODEL, "template_dim": 512, "backlog": 0,
            "clock_state": "verified"}
    assert device.post("/v1/device/heartbeat", json=beat).status_code == 200
    status = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()
    engine.housekeep()
    value = site.shift_types["Day Shift"]["last_sync_of_checkin"]
    assert value == local(status["heartbeat_utc"]), "up to the heartbeat that reported an empty backlog"
    site.fail_next = [503] * 5
    upload(device, punches(["E1"], start_seq=2, prev=hub.export()[-1]["hash"]))
    drain(engine, clock)  # fails: a punch is now waiting for the HRMS
    late = datetime.now(ZoneInfo("UTC")) + timedelta(seconds=5)
    with hub.db.transaction() as tx:
        tx.run("UPDATE devices SET complete_utc = ?", [late.strftime("%Y-%m-%dT%H:%M:%S.000Z")])
    pending = parse_iso(hub.export()[-1]["ts_utc"])
    shift = next(job for job in engine.jobs if job.name == "frappe-shift-sync")
    assert shift.watermark() == pending - timedelta(seconds=1), "never past a punch not yet in the HRMS"
    shift.advance()
    now_value = site.shift_types["Day Shift"]["last_sync_of_checkin"]
    assert value <= now_value <= local(iso_utc(pending)), "forward only, and never past the waiting punch"


def test_employees_flow_from_the_hrms_to_the_hub(site, make_hub, face_engine, face_data: Path) -> None:
    photo = image_files(face_data / "Ariel_Sharon")[0].read_bytes()
    site.files["/private/files/e10.jpg"] = photo
    site.add_employee("HR-EMP-00010", attendance_device_id="E10", branch="Pudong",
                      image="/private/files/e10.jpg", employee_name="New Hire", face_consent_date="2026-01-05")
    site.add_employee("HR-EMP-00011", attendance_device_id="E11", branch="Pudong")  # no photo yet
    site.add_employee("HR-EMP-00012", attendance_device_id="E12", branch="Elsewhere", image="/private/files/e10.jpg")
    site.add_employee("HR-EMP-00013", attendance_device_id="bad id!", branch="Pudong")
    hub, engine, clock = make_hub(site, maker=EngineTemplateMaker.from_engines([face_engine]), page_size=2)
    [poll] = [j for j in engine.jobs if j.name == "frappe-employees"]
    poll.run(clock())
    hired = people.get_employee(hub.db, "E10")
    assert hired.active and hired.branches == ["B001"] and hired.templates == {face_engine.model_id: 1}
    for missing in ("E11", "E12"):
        with pytest.raises(Exception, match="no employee"):
            people.get_employee(hub.db, missing)
    site.files["/private/files/e11.jpg"] = photo
    site.change_employee("HR-EMP-00011", image="/private/files/e11.jpg")
    site.change_employee("HR-EMP-00010", status="Left", relieving_date="2025-03-01")
    poll.run(clock())
    assert people.get_employee(hub.db, "E11").active
    assert people.get_employee(hub.db, "E11").templates == {}, "no consent in the HRMS: card-only, photo unused"
    site.change_employee("HR-EMP-00011", face_consent_date="2026-01-06")
    poll.run(clock())
    assert people.get_employee(hub.db, "E11").templates == {face_engine.model_id: 1}, "consent recorded: photo used"
    with hub.db.transaction(write=False) as tx:
        consent = tx.row("SELECT given_utc, path, taken_by FROM consents WHERE employee_id = 'E11'")
    assert consent["given_utc"].startswith("2026-01-06") and consent["path"] == "hr_connector"
    assert not people.get_employee(hub.db, "E10").active, "a leaver is terminated (kiosks erase them)"
    site.change_employee("HR-EMP-00011", relieving_date=(clock() + timedelta(days=3)).date().isoformat())
    poll.run(clock())
    assert people.get_employee(hub.db, "E11").active, "still employed until the relieving date"
    clock.advance(4 * 86400)
    poll.run(clock())
    assert not people.get_employee(hub.db, "E11").active, "relieving date passed: terminated"
    assert any(call.startswith("GET /api/resource/Employee") for call in site.calls)


def stored_vectors(db, employee_id: str) -> list[bytes]:
    with db.transaction(write=False) as tx:
        return [bytes(r["vector"]) for r in tx.rows("SELECT vector FROM templates WHERE employee_id = ? ORDER BY id",
                                                    [employee_id])]


def test_a_new_photo_in_the_hrms_replaces_the_templates(site, make_hub, face_engine, face_data: Path) -> None:
    first, second = (p.read_bytes() for p in image_files(face_data / "Ariel_Sharon")[:2])
    site.files["/private/files/e20.jpg"] = first
    site.add_employee("HR-EMP-00020", attendance_device_id="E20", branch="Pudong", image="/private/files/e20.jpg",
                      face_consent_date="2026-01-05")
    hub, engine, clock = make_hub(site, maker=EngineTemplateMaker.from_engines([face_engine]))
    [poll] = [j for j in engine.jobs if j.name == "frappe-employees"]
    device = register(hub.url, hub.code())
    beat = {"software_version": "0.1.0", "model_id": face_engine.model_id, "template_dim": 512, "backlog": 0,
            "clock_state": "verified"}
    assert device.post("/v1/device/heartbeat", json=beat).status_code == 200  # the kiosk runs this model
    poll.run(clock())
    hired = stored_vectors(hub.db, "E20")
    assert len(hired) == 1
    cursor = device.get("/v1/device/roster", params={"cursor": 0}).json()["cursor"]

    def fetches() -> int:
        return sum(call.startswith("GET /private/files/") for call in site.calls)

    site.change_employee("HR-EMP-00020", cell_number="13800000000")  # modified, same photo
    before = fetches()
    poll.run(clock())
    assert fetches() == before, "an unchanged image is not fetched again"
    assert stored_vectors(hub.db, "E20") == hired
    site.files["/private/files/e20-new.jpg"] = second
    site.change_employee("HR-EMP-00020", image="/private/files/e20-new.jpg")
    poll.run(clock())
    replaced = stored_vectors(hub.db, "E20")
    assert len(replaced) == 1 and replaced != hired, "the new photo's template replaced the old one"
    assert people.get_employee(hub.db, "E20").templates == {face_engine.model_id: 1}
    changes = device.get("/v1/device/roster", params={"cursor": cursor}).json()
    [entry] = [e for e in changes["employees"] if e["employee_id"] == "E20"]
    assert len(entry["templates"]) == 1, "the kiosks get the new template on their next sync"
    site.files["/private/files/e20-copy.jpg"] = second  # same bytes under a new file name
    site.change_employee("HR-EMP-00020", image="/private/files/e20-copy.jpg")
    poll.run(clock())
    assert stored_vectors(hub.db, "E20") == replaced
    site.files["/private/files/e20-wall.jpg"] = image_files(face_data / "Ariel_Sharon")[0].read_bytes()[:200]
    site.change_employee("HR-EMP-00020", image="/private/files/e20-wall.jpg")
    poll.run(clock())
    assert stored_vectors(hub.db, "E20") == replaced, "a photo that gives no template keeps the old ones"
    assert people.get_employee(hub.db, "E20").active


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_connector_settings_mistakes_are_named(hub_backend, tmp_path, invoke, monkeypatch) -> None:
    monkeypatch.delenv("KIOSK_HUB_FRAPPE_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "hub.toml"
    config.write_text('[server]\nport = 0\n[connectors.frappe]\nenabled = true\nurl = "http://127.0.0.1:9"\n')
    refused = invoke("hub", "serve", "--config", str(config))
    assert refused.exit_code == 1 and "no API key and secret" in refused.output and "token_file" in refused.output
    config.write_text('[connectors.frappe]\nenabled = true\ntime_zone = "Mars/Base"\napi_key = "k"\n')
    bad = invoke("hub", "migrate", "--config", str(config))
    assert bad.exit_code == 1
    for problem in ("connectors.frappe.time_zone", "connectors.frappe.api_key", "unknown key"):
        assert problem in bad.output
    (tmp_path / "frappe.token").write_text("only-a-key\n")
    config.write_text('[server]\nport = 0\n[connectors.frappe]\nenabled = true\nurl = "http://127.0.0.1:9"\n'
                      'token_file = "frappe.token"\n')
    malformed = invoke("hub", "serve", "--config", str(config))
    assert malformed.exit_code == 1 and "does not hold 'API_KEY:API_SECRET'" in malformed.output


def test_hr_corrections_reach_the_hrms_with_their_direction(site, make_hub) -> None:
    hub, engine, clock = make_hub(site, skip_auto_attendance_for_corrections=True)
    assert hub.hr.post("/v1/hr/employees", json={"employee_id": "E1", "name": "Wang Li",
                                                 "branches": ["B001"]}).status_code == 201
    assert hub.hr.put("/v1/hr/branches/B001", json={"timezone": ZONE}).status_code == 200
    yesterday = (datetime.now(ZoneInfo(ZONE)) - timedelta(days=1)).strftime("%Y-%m-%dT18:05")
    made = hub.hr.post("/v1/hr/corrections", json={"employee_id": "E1", "local_time": yesterday,
                                                   "direction": "OUT", "reason": "forgot to punch"})
    assert made.status_code == 201, made.text
    drain(engine, clock)
    [checkin] = site.checkins
    assert str(checkin["time"]) == yesterday.replace("T", " ") + ":00", "the branch's local time, sent as HRMS time"
    assert checkin["log_type"] == "OUT" and checkin["skip_auto_attendance"] == 1
    with hub.db.transaction(write=False) as tx:
        assert tx.row("SELECT count(*) AS n FROM first_punches")["n"] == 0, "a correction is not a first punch"
