"""The HR API behind the hub console, over real HTTP on SQLite and PostgreSQL: accounts and sessions, employee
lists, strict query parameters, payroll exports with names and local times, corrections, the day sheet,
branch managers' scope, device states, the live feed, and the CLI twins."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, time, timedelta
from pathlib import Path

import httpx
import pytest
from console_support import PASSWORD, FakeKiosk, add_user, signed_in
from openpyxl import load_workbook
from sync_support import start_hub

from kiosk.base.errors import ConfigError, InvalidInput
from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub import accounts
from sync.hub.config import validate_hub_config
from sync.hub.export import PAYROLL_COLUMNS

SHANGHAI = "Asia/Shanghai"


def hire(hub, employee_id: str, name: str, branches: list[str]) -> None:  # noqa: ANN001
    resp = hub.hr.post("/v1/hr/employees", json={"employee_id": employee_id, "name": name, "branches": branches})
    assert resp.status_code == 201, resp.text


def set_zone(hub, branch: str, zone: str) -> None:  # noqa: ANN001
    resp = hub.hr.put(f"/v1/hr/branches/{branch}", json={"timezone": zone})
    assert resp.status_code == 200, resp.text


def lines(resp: httpx.Response) -> list[dict]:
    assert resp.status_code == 200, resp.text
    return [json.loads(line) for line in resp.text.splitlines() if line]


def csv_rows(resp: httpx.Response) -> list[dict]:
    assert resp.status_code == 200, resp.text
    return list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))


def test_console_accounts_sign_in_with_strict_cookies_csrf_and_lockout(hub) -> None:
    add_user(hub, "hr.admin", "hr_admin")
    with hub.db.transaction(write=False) as tx:
        stored = tx.row("SELECT password_hash FROM hub_users WHERE username = 'hr.admin'")["password_hash"]
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    anon = httpx.Client(base_url=hub.url, timeout=30)
    good = anon.post("/v1/hr/session", json={"username": "hr.admin", "password": PASSWORD})
    cookie = good.headers["set-cookie"].lower()
    assert good.status_code == 200 and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie, "plain HTTP: a Secure cookie would never come back"
    csrf = good.json()["csrf_token"]
    body = {"employee_id": "E1", "local_time": "2026-01-05T09:00", "reason": "x"}
    assert anon.post("/v1/hr/corrections", json=body).status_code == 403, "a session change needs its CSRF token"
    assert anon.post("/v1/hr/corrections", json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    assert anon.post("/v1/hr/corrections", json=body, headers={"X-CSRF-Token": csrf}).status_code == 404
    assert anon.delete("/v1/hr/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert anon.get("/v1/hr/session").status_code == 401, "signed out"

    statuses = [anon.post("/v1/hr/session", json={"username": "hr.admin", "password": "wrong one!"}).status_code
                for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = anon.post("/v1/hr/session", json={"username": "hr.admin", "password": PASSWORD})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "locked" and locked.headers["retry-after"]
    accounts.set_password(hub.db, "hr.admin", "a brand new password", "tests")
    assert anon.post("/v1/hr/session", json={"username": "hr.admin", "password": "a brand new password"}) \
        .status_code == 200
    nobody = anon.post("/v1/hr/session", json={"username": "nobody", "password": PASSWORD})
    assert nobody.status_code == 401 and nobody.json()["error"]["message"] == "wrong user name or password"
    with pytest.raises(InvalidInput, match="10-200"):
        accounts.add_user(hub.db, "short", "ops", "tooshort", [], "tests")
    with pytest.raises(InvalidInput, match="at least one branch"):
        accounts.add_user(hub.db, "mgr", "branch_manager", PASSWORD, [], "tests")


def test_employee_list_is_paged_and_filtered_by_branch_status_and_text(hub) -> None:
    for i, (name, branch) in enumerate([("Wang Li", "B001"), ("王丽", "B001"), ("Li Na", "B002"), ("Zhang Wei", "B001"),
                                        ("Chen Jie", "B002")]):
        hire(hub, f"E{i + 1}", name, [branch])
    assert hub.hr.post("/v1/hr/employees/E4/terminate", json={"reason": "left"}).status_code == 200
    first = hub.hr.get("/v1/hr/employees", params={"limit": 2}).json()
    assert [e["employee_id"] for e in first["employees"]] == ["E1", "E2"] and first["total"] == 4
    second = hub.hr.get("/v1/hr/employees", params={"limit": 2, "offset": first["next_offset"]}).json()
    assert [e["employee_id"] for e in second["employees"]] == ["E3", "E5"] and second["next_offset"] is None
    b001 = hub.hr.get("/v1/hr/employees", params={"branch": "B001", "status": "all"}).json()
    assert [e["employee_id"] for e in b001["employees"]] == ["E1", "E2", "E4"]
    gone = hub.hr.get("/v1/hr/employees", params={"status": "terminated"}).json()["employees"]
    assert [(e["employee_id"], e["terminate_reason"]) for e in gone] == [("E4", "left")]
    assert [e["employee_id"] for e in hub.hr.get("/v1/hr/employees", params={"q": "li"}).json()["employees"]] == \
        ["E1", "E3"]
    assert [e["name"] for e in hub.hr.get("/v1/hr/employees", params={"q": "丽"}).json()["employees"]] == ["王丽"]
    assert hub.hr.get("/v1/hr/employees", params={"q": "%"}).json()["total"] == 0, "LIKE wildcards are literal"


def test_unknown_query_parameters_are_refused_by_name_and_every_console_action_has_an_api_twin(hub) -> None:
    resp = hub.hr.get("/v1/hr/punches", params={"from": "2026-11-01", "frm": "x", "employee": "E1"})
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["code"] == "unknown_parameter"
    assert "frm" in error["message"] and "employee" in error["message"] and "employee_id" in error["fix"]
    assert hub.hr.get("/v1/hr/employees", params={"sort": "name"}).status_code == 400
    assert hub.hr.get("/v1/hr/punches", params={"from": "2026-11-01", "to": "2026-11-02T00:00:00Z"}) \
        .status_code == 200
    bad = hub.hr.get("/v1/hr/punches", params={"from": "yesterday"})
    assert bad.status_code == 422 and "from='yesterday'" in bad.json()["error"]["message"]
    spec = httpx.get(f"{hub.url}/v1/openapi.json", timeout=30).json()["paths"]
    twins = {("get", "/v1/hr/employees"), ("post", "/v1/hr/employees"), ("patch", "/v1/hr/employees/{employee_id}"),
             ("post", "/v1/hr/employees/{employee_id}/terminate"), ("get", "/v1/hr/employees/{employee_id}/kiosks"),
             ("get", "/v1/hr/punches"), ("get", "/v1/hr/punches/stream"), ("get", "/v1/hr/export"),
             ("post", "/v1/hr/corrections"), ("get", "/v1/hr/attendance"), ("get", "/v1/hr/today"),
             ("get", "/v1/hr/devices"), ("post", "/v1/hr/devices/{device_id}/revoke"),
             ("post", "/v1/hr/registration-codes"), ("put", "/v1/hr/branches/{code}"), ("post", "/v1/hr/session"),
             ("delete", "/v1/hr/session")}
    assert {t for t in twins if t[1] not in spec or t[0] not in spec[t[1]]} == set()
    query = {p["name"] for p in spec["/v1/hr/punches"]["get"]["parameters"] if p["in"] == "query"}
    assert {"from", "to", "employee_id", "branch", "since"} <= query
    assert not any(path == "/" or path.startswith("/employees") for path in spec), "console pages stay out of it"


def test_exports_carry_names_and_local_times_in_each_branchs_zone_and_filter_by_date_person_branch(hub) -> None:
    set_zone(hub, "B001", SHANGHAI)
    hire(hub, "E1", "王丽", ["B001"])
    hire(hub, "E2", "Li Na", ["B002"])
    b001, b002 = FakeKiosk(hub, "B001"), FakeKiosk(hub, "B002")
    b001.punch("E1", "2026-11-01T23:30:00.000Z")  # 07:30 on 2 November in Shanghai
    b001.punch("E1", "2026-11-02T10:05:00.000Z")  # 18:05
    b002.punch("E2", "2026-11-02T09:00:00.000Z")  # UTC branch: 09:00
    b002.punch("E2", "2026-11-03T09:00:00.000Z")
    day = csv_rows(hub.hr.get("/v1/hr/export", params={"from": "2026-11-02", "to": "2026-11-02"}))
    assert [(r["employee_id"], r["name"], r["branch"], r["local_date"], r["local_time"], r["timezone"])
            for r in day] == [("E1", "王丽", "B001", "2026-11-02", "07:30:00", SHANGHAI),
                              ("E1", "王丽", "B001", "2026-11-02", "18:05:00", SHANGHAI),
                              ("E2", "Li Na", "B002", "2026-11-02", "09:00:00", "UTC")]
    assert set(day[0]) == set(PAYROLL_COLUMNS) and day[0]["kind"] == "punch" and day[0]["method"] == "face"
    by_instant = csv_rows(hub.hr.get("/v1/hr/export", params={"from": "2026-11-02T00:00:00Z",
                                                              "to": "2026-11-03T00:00:00Z"}))
    assert [r["local_time"] for r in by_instant] == ["18:05:00", "09:00:00"]
    assert [r["employee_id"] for r in csv_rows(hub.hr.get("/v1/hr/export", params={"employee_id": "E2"}))] == \
        ["E2", "E2"]
    assert {r["branch"] for r in csv_rows(hub.hr.get("/v1/hr/export", params={"branch": "B001"}))} == {"B001"}
    resp = hub.hr.get("/v1/hr/export", params={"format": "xlsx", "from": "2026-11-02", "to": "2026-11-03"})
    assert resp.status_code == 200 and "attachment" in resp.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(resp.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == PAYROLL_COLUMNS and len(rows) == 5
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["name"] == "王丽" and first["local_date"].date() == date(2026, 11, 2)
    assert first["local_time"] == time(7, 30)
    feed = lines(hub.hr.get("/v1/hr/punches", params={"from": "2026-11-02", "branch": "B001"}))
    assert [(p["name"], p["local_time"], p["kind"], p["direction"]) for p in feed] == \
        [("王丽", "07:30:00", "punch", None), ("王丽", "18:05:00", "punch", None)]
    newest = lines(hub.hr.get("/v1/hr/punches", params={"order": "desc", "limit": 1}))
    assert newest[0]["ts_utc"] == "2026-11-03T09:00:00.000Z"
    b001.close()
    b002.close()


def test_corrections_are_new_audited_records_with_reason_author_and_a_confirmation(hub) -> None:
    set_zone(hub, "B001", SHANGHAI)
    hire(hub, "E1", "Wang Li", ["B001"])
    kiosk = FakeKiosk(hub, "B001")
    kiosk.punch("E1", "2026-11-02T00:57:00.000Z")  # 08:57 local
    hr = signed_in(hub, add_user(hub, "hr.admin", "hr_admin"))
    body = {"employee_id": "E1", "local_time": "2026-11-02T18:05", "direction": "OUT", "reason": "forgot to punch"}
    assert hr.post("/v1/hr/corrections", json={**body, "reason": "  "}).status_code == 422
    future = iso_utc(utc_now() + timedelta(days=2))[:16]
    assert hr.post("/v1/hr/corrections", json={**body, "local_time": future}).status_code == 422
    made = hr.post("/v1/hr/corrections", json=body)
    assert made.status_code == 201, made.text
    row = made.json()
    assert (row["kind"], row["direction"], row["author"], row["note"], row["ts_utc"], row["local_time"]) == \
        ("correction", "OUT", "hr.admin", "forgot to punch", "2026-11-02T10:05:00.000Z", "18:05:00")
    again = hr.post("/v1/hr/corrections", json={**body, "local_time": "2026-11-02T18:10"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "confirm_needed"
    assert hr.post("/v1/hr/corrections", json={**body, "local_time": "2026-11-02T18:10", "confirm": True}) \
        .status_code == 201
    stored = hub.export()
    assert [(p["kind"], p["device_id"]) for p in stored] == [("punch", kiosk.device_id), ("correction", "hub"),
                                                             ("correction", "hub")]
    assert stored[0]["hash"] == kiosk.prev, "the kiosk's punch is never changed"
    sheet = hub.hr.get("/v1/hr/attendance", params={"branch": "B001", "date": "2026-11-02"}).json()
    person = sheet["people"][0]
    assert (person["first_in"], person["last_out"], person["worked_s"]) == ("08:57:00", "18:10:00", 33180)
    assert person["exceptions"] == ["correction"]
    trail = hub.hr.get("/v1/hr/audit", params={"target": "E1"}).json()
    assert [(a["actor"], a["action"]) for a in trail[:2]] == [("hr.admin", "punch.correction")] * 2
    assert trail[0]["detail"]["confirmed"] is True
    kiosk.close()


def test_a_work_day_starts_at_day_starts_at_so_a_night_shift_stays_one_day(hub_config) -> None:  # noqa: ANN001
    """[console] day_starts_at (04:00, as the kiosks' punch.day_starts_at) and a night-shift branch's own
    start (14:00): a punch at 02:00 or 06:03 belongs to the work day before."""
    console = hub_config.console.model_copy(update={"branch_day_starts_at": {"B002": "14:00"}})
    hub = start_hub(hub_config.model_copy(update={"console": console}))
    try:
        for branch in ("B001", "B002"):
            set_zone(hub, branch, SHANGHAI)
        hire(hub, "E1", "Day Teller", ["B001"])
        hire(hub, "E2", "Night Guard", ["B002"])
        day, night = FakeKiosk(hub, "B001"), FakeKiosk(hub, "B002")
        day.punch("E1", "2026-11-02T00:00:00.000Z", direction="IN")  # 08:00 local
        day.punch("E1", "2026-11-02T18:00:00.000Z", direction="OUT")  # 02:00 the next morning: a long day
        night.punch("E2", "2026-11-02T13:55:00.000Z", direction="IN")  # 21:55
        night.punch("E2", "2026-11-02T22:03:00.000Z", direction="OUT")  # 06:03 the next morning
        night.punch("E2", "2026-11-03T13:58:00.000Z", direction="IN")  # 21:58: the next night's shift

        def sheet(branch: str, on: str) -> dict:
            resp = hub.hr.get("/v1/hr/attendance", params={"branch": branch, "date": on})
            assert resp.status_code == 200, resp.text
            return resp.json()

        b001 = sheet("B001", "2026-11-02")
        (e1,) = b001["people"]
        assert b001["day_starts_at"] == "04:00"
        assert (e1["first_in"], e1["last_out"], e1["worked_s"], e1["exceptions"]) == ("08:00:00", "02:00:00", 64800, [])
        assert [p["local_date"] for p in e1["punches"]] == ["2026-11-02", "2026-11-03"]
        assert sheet("B001", "2026-11-03")["people"][0]["exceptions"] == ["absent"]
        b002 = sheet("B002", "2026-11-02")
        (e2,) = b002["people"]
        assert b002["day_starts_at"] == "14:00"
        assert (e2["first_in"], e2["last_out"], e2["worked_s"], e2["exceptions"]) == ("21:55:00", "06:03:00", 29280, [])
        (next_night,) = sheet("B002", "2026-11-03")["people"]
        assert (next_night["first_in"], next_night["exceptions"]) == ("21:58:00", ["missing_out"])
        day.close()
        night.close()
    finally:
        hub.hr.close()
        hub.server.stop()


def test_day_starts_at_per_branch_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        validate_hub_config({"console": {"branch_day_starts_at": {"B002": "25:00", "no spaces!": "14:00"}}}, "hub.toml",
                            tmp_path)
    assert "console.branch_day_starts_at" in str(refused.value.problems)
    assert "HH:MM" in str(refused.value.problems) or "branch code" in str(refused.value.problems)


def test_the_day_sheet_names_each_exception(hub) -> None:
    for employee_id in ("E1", "E2", "E3", "E4"):
        hire(hub, employee_id, f"Person {employee_id}", ["B001"])
    kiosk = FakeKiosk(hub, "B001")
    kiosk.punch("E1", "2026-11-02T08:00:00.000Z")
    kiosk.punch("E1", "2026-11-02T12:00:00.000Z")
    kiosk.punch("E1", "2026-11-02T17:30:00.000Z")
    kiosk.punch("E2", "2026-11-02T08:10:00.000Z", flags="outside_geofence")
    kiosk.punch("E4", "2026-11-02T08:20:00.000Z", clock_state="unverified", boot_id="boot-without-anchor")
    kiosk.punch("E9", "2026-11-02T08:30:00.000Z")
    resp = hub.hr.get("/v1/hr/attendance", params={"branch": "B001", "date": "2026-11-02"})
    sheet = {p["employee_id"]: p for p in resp.json()["people"]}
    assert (sheet["E1"]["first_in"], sheet["E1"]["last_out"], sheet["E1"]["worked_s"], sheet["E1"]["exceptions"]) == \
        ("08:00:00", "17:30:00", 34200, [])
    assert sheet["E2"]["exceptions"] == ["missing_out", "outside_geofence"]
    assert sheet["E3"]["exceptions"] == ["absent"]
    assert sheet["E4"]["exceptions"] == ["missing_out", "unverified_clock"]
    assert sheet["E9"]["exceptions"] == ["missing_out", "not_on_roster"] and sheet["E9"]["name"] == ""
    assert hub.hr.get("/v1/hr/attendance", params={"branch": "B001", "date": "2-11-2026"}).status_code == 422
    kiosk.close()


def test_a_branch_manager_sees_and_acts_only_on_their_branches(hub) -> None:
    hire(hub, "E1", "Wang Li", ["B001"])
    hire(hub, "E2", "Li Na", ["B002"])
    b001, b002 = FakeKiosk(hub, "B001"), FakeKiosk(hub, "B002")
    b001.punch("E1")
    b002.punch("E2")
    mgr = signed_in(hub, add_user(hub, "mgr.b001", "branch_manager", ["B001"]))
    assert [e["employee_id"] for e in mgr.get("/v1/hr/employees").json()["employees"]] == ["E1"]
    assert mgr.get("/v1/hr/employees", params={"branch": "B002"}).status_code == 403
    assert mgr.get("/v1/hr/employees/E2").status_code == 404
    assert {p["branch"] for p in lines(mgr.get("/v1/hr/punches"))} == {"B001"}
    assert mgr.get("/v1/hr/punches", params={"branch": "B002"}).status_code == 403
    assert {r["branch"] for r in csv_rows(mgr.get("/v1/hr/export"))} == {"B001"}
    assert mgr.get("/v1/hr/export", params={"branch": "B002"}).status_code == 403
    assert [d["branch"] for d in mgr.get("/v1/hr/devices").json()] == ["B001"]
    assert mgr.get(f"/v1/hr/devices/{b002.device_id}").status_code == 404
    assert [b["branch"] for b in mgr.get("/v1/hr/today").json()] == ["B001"]
    assert mgr.get("/v1/hr/attendance", params={"branch": "B002"}).status_code == 403
    fix = {"employee_id": "E2", "branch": "B002", "local_time": "2026-11-02T18:00", "reason": "forgot"}
    assert mgr.post("/v1/hr/corrections", json=fix).status_code == 403
    assert mgr.post("/v1/hr/corrections", json={**fix, "employee_id": "E1", "branch": "B001"}).status_code == 201
    assert mgr.post("/v1/hr/employees", json={"employee_id": "E7", "name": "X", "branches": ["B001"]}) \
        .status_code == 403, "new hires are HR's"
    assert mgr.post(f"/v1/hr/devices/{b001.device_id}/revoke").status_code == 403
    ops = signed_in(hub, add_user(hub, "ops1", "ops"))
    assert ops.get("/v1/hr/employees").status_code == 403
    code = ops.post("/v1/hr/registration-codes", json={"branch": "B003"})
    assert code.status_code == 201 and len(code.json()["code"]) == 19
    revoked = ops.post(f"/v1/hr/devices/{b002.device_id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    b001.close()
    b002.close()


def test_the_live_feed_streams_new_punches_of_the_callers_branches(hub) -> None:
    hire(hub, "E1", "Wang Li", ["B001"])
    b001, b002 = FakeKiosk(hub, "B001"), FakeKiosk(hub, "B002")
    mgr = signed_in(hub, add_user(hub, "mgr.b001", "branch_manager", ["B001"]))
    with mgr.stream("GET", "/v1/hr/punches/stream") as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        received = stream.iter_lines()
        assert next(received).startswith("retry:")
        b002.punch("E2")
        b001.punch("E1")
        event = next(line for line in received if line.startswith("data:"))
    punch = json.loads(event.removeprefix("data:"))
    assert (punch["employee_id"], punch["branch"], punch["name"]) == ("E1", "B001", "Wang Li")
    b001.close()
    b002.close()


def _hub_toml(hub, path: Path) -> Path:  # noqa: ANN001
    database = hub.server.config.database
    lines = ["[database]", f'backend = "{database.backend}"']
    if database.backend == "postgres":
        lines += [f"postgres_dsn = '{database.postgres_dsn}'", f'postgres_schema = "{database.postgres_schema}"']
    else:
        lines.append(f'sqlite_path = "{database.sqlite_path}"')
    path.write_text("\n".join(lines) + "\n[console]\noffline_after_s = 60\n", encoding="utf-8")
    return path


def test_device_states_by_heartbeat_age_and_the_cli_twins(hub, invoke, tmp_path: Path) -> None:
    online, quiet, silent, gone = (FakeKiosk(hub, b) for b in ("B001", "B001", "B002", "B002"))
    online.heartbeat(backlog=17)
    quiet.heartbeat(backlog=3)
    with hub.db.transaction() as tx:
        tx.run("UPDATE devices SET heartbeat_utc = ? WHERE id = ?", [iso_utc(utc_now() - timedelta(hours=2)),
                                                                     quiet.device_id])
    assert hub.hr.post(f"/v1/hr/devices/{gone.device_id}/revoke").status_code == 200
    states = {d["device_id"]: (d["state"], d["heartbeat"].get("backlog")) for d in hub.hr.get("/v1/hr/devices").json()}
    assert states == {online.device_id: ("online", 17), quiet.device_id: ("offline", 3),
                      silent.device_id: ("never", None), gone.device_id: ("revoked", None)}
    config = str(_hub_toml(hub, tmp_path / "hub.toml"))
    listed = invoke("hub", "device", "list", "--config", config)
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:5] == ["DEVICE", "BRANCH", "STATE", "HEARTBEAT", "BACKLOG"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells[online.device_id][2] == "online" and cells[online.device_id][5] == "17"
    assert cells[quiet.device_id][2] == "offline" and cells[silent.device_id][2] == "never"

    assert invoke("hub", "branch", "set", "B001", "--timezone", SHANGHAI, "--config", config).exit_code == 0
    hire(hub, "E1", "王丽", ["B001"])
    online.punch("E1", "2026-11-01T23:30:00.000Z")
    out = tmp_path / "punches.xlsx"
    result = invoke("hub", "punches", "--from", "2026-11-02", "--to", "2026-11-02", "--format", "xlsx",
                    "--out", str(out), "--config", config)
    assert result.exit_code == 0, result.output
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert rows[1][:2] == ("E1", "王丽") and rows[1][4] == time(7, 30)
    csv_out = invoke("hub", "punches", "--from", "2026-11-02", "--config", config)
    assert "E1,王丽,B001,2026-11-02,07:30:00" in csv_out.stdout
    assert invoke("hub", "punches", "--from", "soon", "--config", config).exit_code == 1
    added = invoke("hub", "user", "add", "mgr", "--role", "branch_manager", "--branch", "B001", "--password-stdin",
                   "--config", config, input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "mgr" in invoke("hub", "user", "list", "--config", config).stdout
    signed_in(hub, "mgr").close()
    for kiosk in (online, quiet, silent, gone):
        kiosk.close()
