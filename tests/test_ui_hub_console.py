"""The hub console end to end in a real headless Chromium (Debian's), against the real hub on SQLite and on
PostgreSQL: sign in, a kiosk comes online, a new hire from real photos (each photo's verdict), a punch arriving
live, a missing OUT corrected (with the confirmation for a second one), an XLSX export read back, a leaver, and
a branch manager who cannot see another branch. Screenshots of every page in both languages at 1280x800 and
1024x768 land in $KIOSK_CONSOLE_SCREENSHOTS (default: test-artifacts/console in the checkout)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from console_support import PASSWORD, FakeKiosk, add_user
from openpyxl import load_workbook
from sync_support import hub_config_data, start_hub
from ui_support import chromium, require_chromium

from conftest import REPO
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.face.images import image_files
from sync.hub import branches
from sync.hub.config import validate_hub_config
from sync.hub.console.render import catalogue
from sync.hub.faces import EngineTemplateMaker

WAIT_MS = 60_000
ZONE = "Asia/Shanghai"
SIZES = ((1280, 800), (1024, 768))
SHOTS = Path(os.environ.get("KIOSK_CONSOLE_SCREENSHOTS", REPO / "test-artifacts" / "console"))


@pytest.fixture
def console_hub(hub_config, face_engine):  # noqa: ANN001, ANN201
    require_chromium()
    hub = start_hub(hub_config, maker=EngineTemplateMaker.from_engines([face_engine]))
    branches.set_branch(hub.db, "B001", ZONE, "Pudong", "tests")
    yield hub
    hub.hr.close()
    hub.server.stop()


def sign_in(page, url: str, username: str) -> None:  # noqa: ANN001
    page.goto(url + "/")
    page.wait_for_url(re.compile(r"/signin\?next="))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def local_past_day() -> datetime:
    """08:57 two days ago at the branch: a work day that is over whatever the time now (a punch made now
    belongs to today's work day or, before [console] day_starts_at, to yesterday's)."""
    return (utc_now().astimezone(ZoneInfo(ZONE)) - timedelta(days=2)).replace(hour=8, minute=57, second=0,
                                                                               microsecond=0)


def test_hr_journey_in_the_browser(console_hub, face_engine, face_data: Path, tmp_path: Path) -> None:
    hub = console_hub
    kiosk = FakeKiosk(hub, "B001", model_id=face_engine.model_id)
    add_user(hub, "hr.admin", "hr_admin")
    add_user(hub, "mgr.b002", "branch_manager", ["B002"])
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB").new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, hub.url, "hr.admin")

        page.goto(f"{hub.url}/devices")
        assert page.get_attribute(f"tr[data-device='{kiosk.device_id}']", "data-state") == "never"
        kiosk.heartbeat(backlog=2)
        page.reload()
        row = page.locator(f"tr[data-device='{kiosk.device_id}']")
        assert row.get_attribute("data-state") == "online" and "Online" in row.inner_text()

        sharon = image_files(face_data / "Ariel_Sharon")[:2]
        page.goto(f"{hub.url}/employees")
        page.click("#new-hire")
        page.fill("input[name=employee_id]", "E100")
        page.fill("input[name=name]", "Ariel Sharon")
        page.fill("input[name=branches]", "B001")
        page.fill("input[name=cards]", "00A1B2C3")
        page.set_input_files("#new-hire-form input[name=photos]", [*map(str, sharon),
                                                                   str(face_data / "_nofaces" / "dog.jpg")])
        page.check("#new-hire-form input[name=consent]")  # the person read the consent text and agreed
        page.click("#new-hire-form button[type=submit]")
        verdicts = page.locator("#photo-verdicts li")
        verdicts.first.wait_for()
        assert [verdicts.nth(i).get_attribute("data-ok") for i in range(3)] == ["yes", "yes", "no"]
        assert "no face found" in verdicts.nth(2).inner_text()
        assert page.locator("#kiosk-templates .badge.pending").count() == 1, "the kiosk has not synced yet"
        kiosk.heartbeat(roster_cursor=10_000)
        page.goto(f"{hub.url}/employees/E100")
        assert page.locator("#kiosk-templates .badge.synced").count() == 1

        page.goto(f"{hub.url}/punches")
        page.wait_for_selector("#live-feed[data-connected=yes]")
        kiosk.punch("E100")
        live = page.locator("#live-feed tbody tr.punch[data-employee=E100]")
        live.wait_for()
        assert "Ariel Sharon" in live.inner_text() and "Face" in live.inner_text()

        came_in = local_past_day()
        day = came_in.date().isoformat()
        kiosk.punch("E100", iso_utc(came_in))
        page.goto(f"{hub.url}/attendance?branch=B001&day={day}")
        person = page.locator("#day-sheet tr[data-employee=E100]")
        assert "missing_out" in person.get_attribute("data-exceptions")
        assert person.locator(".first-in").inner_text() == "08:57"
        person.locator("a.button").click()
        page.wait_for_url(re.compile(r"/attendance/correct\?"))
        assert page.input_value("select[name=direction]") == "OUT"
        page.fill("input[name=local_time]", f"{day}T18:05")
        page.fill("input[name=reason]", "forgot to punch out")
        page.click("#correct-form button[type=submit]")
        page.wait_for_url(re.compile(r"/attendance\?.*done=corrected"))
        person = page.locator("#day-sheet tr[data-employee=E100]")
        assert person.locator(".last-out").inner_text() == "18:05"
        assert person.get_attribute("data-exceptions") == "correction"

        page.goto(f"{hub.url}/attendance/correct?employee_id=E100&branch=B001&direction=OUT&local_time={day}T18:09")
        page.fill("input[name=reason]", "left a little later")
        page.click("#correct-form button[type=submit]")
        page.wait_for_selector("#confirm")
        assert "Please confirm" in page.inner_text("[role=alert]")
        page.check("#confirm")
        page.click("#correct-form button[type=submit]")
        page.wait_for_url(re.compile(r"done=corrected"))
        assert page.locator("#day-sheet tr[data-employee=E100] .last-out").inner_text() == "18:09"

        page.goto(f"{hub.url}/export")
        page.fill("input[name=from]", day)
        page.fill("input[name=to]", (came_in + timedelta(days=1)).date().isoformat())
        page.select_option("select[name=branch]", "B001")
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "export.xlsx"
        download.value.save_as(saved)
        rows = list(load_workbook(saved).active.iter_rows(values_only=True))
        header, data = rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
        assert header[:4] == ("employee_id", "name", "branch", "local_date")
        mine = [r for r in data if r["employee_id"] == "E100" and r["local_date"].date() == came_in.date()]
        assert [(r["name"], r["local_time"], r["direction"], r["kind"], r["method"]) for r in mine] == [
            ("Ariel Sharon", dtime(8, 57), None, "punch", "face"),
            ("Ariel Sharon", dtime(18, 5), "OUT", "correction", "manual"),
            ("Ariel Sharon", dtime(18, 9), "OUT", "correction", "manual")]

        page.goto(f"{hub.url}/employees/E100")
        page.fill("#terminate-form input[name=reason]", "resigned")
        page.click("#terminate-form button[type=submit]")
        page.wait_for_url(re.compile(r"done=terminated"))
        assert page.inner_text("#emp-status") == "Terminated"

        manager = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB").new_page()
        manager.set_default_timeout(WAIT_MS)
        sign_in(manager, hub.url, "mgr.b002")
        manager.goto(f"{hub.url}/employees?status=all")
        assert manager.locator("#employee-list tr[data-employee=E100]").count() == 0
        assert manager.goto(f"{hub.url}/employees/E100").status == 404
        assert manager.goto(f"{hub.url}/punches").ok
        assert manager.locator("tr.punch[data-employee=E100]").count() == 0
        manager.goto(f"{hub.url}/punches?branch=B001")
        assert "You may not do this." in manager.inner_text("[role=alert]")
        api = manager.request.get(f"{hub.url}/v1/hr/employees/E100")
        assert api.status == 404, "the browser's session reaches the API with the same scope"
        assert manager.request.get(f"{hub.url}/v1/hr/punches?branch=B001").status == 403
    kiosk.close()


PAGES = ("/", "/devices", "/device", "/punches", "/employees", "/employee", "/employees/new", "/attendance",
         "/attendance/correct", "/export", "/outbox", "/phones", "/missing")


def _seed(hub) -> tuple[str, str]:  # noqa: ANN001
    """A little of everything: people, kiosks online and never seen, punches, a correction, a stranger."""
    for employee_id, name, branch in (("E1", "王丽", "B001"), ("E2", "Li Na", "B001"), ("E3", "Zhang Wei", "B002")):
        assert hub.hr.post("/v1/hr/employees", json={"employee_id": employee_id, "name": name,
                                                     "branches": [branch], "cards": ["00AB" + employee_id[1:]]}
                           ).status_code == 201
    online, never = FakeKiosk(hub, "B001"), FakeKiosk(hub, "B002")
    online.heartbeat(backlog=3)
    came_in = local_past_day()
    online.punch("E1", iso_utc(came_in))
    online.punch("E2", iso_utc(came_in + timedelta(minutes=4)), flags="outside_geofence")
    online.punch("E9", iso_utc(came_in + timedelta(minutes=9)), clock_state="unverified", boot_id="b2")
    online.punch("E1")
    assert hub.hr.post("/v1/hr/corrections", json={"employee_id": "E1", "local_time": f"{came_in.date()}T18:05",
                                                   "direction": "OUT", "reason": "forgot"}).status_code == 201
    online.close()
    never.close()
    return online.device_id, came_in.date().isoformat()


KEY_RE = re.compile(r"\b(?:" + "|".join(sorted({key.split(".")[0] for key in catalogue("en")})) + r")\.[a-z_]+")


def _check_page(page, lang: str) -> None:  # noqa: ANN001
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow} px wider than the window"
    text = page.inner_text("body")
    # Identifiers shown as code (event types such as attendance.punch.created) are not catalogue keys.
    words = page.evaluate("() => { const b = document.body.cloneNode(true); "
                          "b.querySelectorAll('code').forEach((c) => c.remove()); return b.innerText; }")
    assert KEY_RE.findall(words) == [], f"{page.url} shows catalogue keys instead of words"
    assert ("考勤中心" in text) == (lang == "zh"), f"{page.url} is not in {lang}"


def test_new_hire_photos_get_their_verdicts_before_saving(console_hub, face_data: Path, tmp_path: Path) -> None:
    """Choosing photos on the new-hire form shows each one's verdict at once (the save's own checks, through
    POST /employees/photos/check, twin of POST /v1/hr/photos/check); nothing is saved until the form is sent."""
    import base64

    import cv2
    hub = console_hub
    add_user(hub, "hr.admin", "hr_admin")
    good = image_files(face_data / "Ariel_Sharon")[0]
    tiny = tmp_path / "tiny.jpg"  # the same face, far too small to enrol
    cv2.imwrite(str(tiny), cv2.resize(cv2.imread(str(good)), (40, 40), interpolation=cv2.INTER_AREA))
    chosen = [good, face_data / "_nofaces" / "dog.jpg", face_data / "_groups" / "face_recog_two_people.jpg", tiny]
    with chromium() as browser:
        for lang in ("en", "zh"):
            page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB").new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{hub.url}/lang?to={lang}&next=/signin")
            sign_in(page, hub.url, "hr.admin")
            page.goto(f"{hub.url}/employees/new")
            page.fill("input[name=employee_id]", "E200")
            page.set_input_files("#new-hire-form input[name=photos]", [str(p) for p in chosen])
            page.wait_for_selector("#photo-check[data-state=done]")
            verdicts = page.locator("#photo-check li")
            assert [verdicts.nth(i).get_attribute("data-ok") for i in range(4)] == ["yes", "no", "no", "no"]
            texts = [verdicts.nth(i).inner_text() for i in range(4)]
            words = catalogue(lang)
            assert texts[0].startswith(good.name) and words["photo.used"] in texts[0]
            assert words["photo.no_face"] in texts[1] and words["photo.several_faces"] in texts[2]
            assert words["photo.poor_quality"] in texts[3] and "small" in texts[3]  # the detail names the cause
            page.screenshot(path=str(SHOTS / f"new-hire-photo-check-{lang}-1280x800.png"), full_page=True)
            page.context.close()
    assert hub.hr.get("/v1/hr/employees/E200").status_code == 404, "checking photos saves nothing"
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in (good, tiny)]
    api = hub.hr.post("/v1/hr/photos/check", json={"photos": encoded})
    assert api.status_code == 200, api.text
    assert [(v["index"], v["ok"]) for v in api.json()["photos"]] == [(0, True), (1, False)]
    assert api.json()["photos"][1]["reasons"][0].startswith("poor_quality:")
    assert hub.hr.post("/v1/hr/photos/check", json={"photos": ["bm90IGEgcGhvdG8="]}).status_code == 422
    assert "/v1/hr/photos/check" in hub.hr.get("/v1/openapi.json").json()["paths"]


def test_every_page_in_both_languages_at_laptop_and_tablet_sizes(tmp_path: Path, request) -> None:  # noqa: ANN001
    require_chromium()
    config = validate_hub_config(hub_config_data("sqlite", tmp_path, request), "test", tmp_path)
    hub = start_hub(config)
    branches.set_branch(hub.db, "B001", ZONE, "Pudong", "tests")
    add_user(hub, "hr.admin", "hr_admin")
    device_id, day = _seed(hub)
    SHOTS.mkdir(parents=True, exist_ok=True)
    paths = {"/device": f"/devices/{device_id}", "/employee": "/employees/E1", "/phones": "/phones?employee=E1",
             "/attendance": f"/attendance?branch=B001&day={day}",
             "/attendance/correct": f"/attendance/correct?employee_id=E2&branch=B001&local_time={day}T18:00"
                                    "&direction=OUT"}
    try:
        with chromium() as browser:
            for lang in ("en", "zh"):
                for width, height in SIZES:
                    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                    page.goto(f"{hub.url}/lang?to={lang}&next=/signin")
                    page.screenshot(path=str(SHOTS / f"signin-{lang}-{width}x{height}.png"), full_page=True)
                    _check_page(page, lang)
                    sign_in(page, hub.url, "hr.admin")
                    for name in PAGES:
                        response = page.goto(hub.url + paths.get(name, name))
                        assert response.status == (404 if name == "/missing" else 200), name
                        if name == "/punches":
                            page.wait_for_selector("#live-feed[data-connected=yes]")
                        slug = name.strip("/").replace("/", "-") or "today"
                        page.screenshot(path=str(SHOTS / f"{slug}-{lang}-{width}x{height}.png"), full_page=True)
                        _check_page(page, lang)
                    page.context.close()
    finally:
        hub.hr.close()
        hub.server.stop()
