"""The kiosk screen end to end: the real daemon (`python -m kiosk run`) with a fake camera showing real
photos and a card reader on a real pty, driven through a real headless Chromium.

The tests run in file order against one daemon and one browser page (loading models once): the
idle screen, languages, a live punch, admin login, guided enrolment (with the duplicate warning),
cards, manual punch, health (en and zh), erase, lockout, camera offline, the daemon stopped and
back; then kiosks of their own: card-only, and liveness on. Screenshots (zh/en pairs at 800x480 for
the states the screen must match) land in $KIOSK_UI_SCREENSHOTS (default: test-artifacts/screens in
the checkout, kept after the run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ui_support import Daemon, Scene, chromium, free_port, new_page, require_chromium, wait_for_idle_frames

from conftest import CONSENT_ARGS, REPO, PtyDevice, run_kiosk
from kiosk.config import load_config
from kiosk.store import open_store
from kiosk.ui.config import UiConfig

# One scenario in file order (see above): under `pytest -n` (make test: --dist loadgroup) every test of the module
# runs on one worker, with the one daemon and page the earlier tests left logged in, enrolled and so on.
pytestmark = pytest.mark.xdist_group("ui_kiosk_scenario")

PIN = "135790"
TRACK_GRACE_FRAMES = 5  # face.track_grace_frames, the default
WAIT_MS = 20_000
BRANCH = "Pudong Sub-branch"
BRANCH_LAT, BRANCH_LON = 31.2304, 121.4737
FAR_AWAY_GPS = "fake:?lat=39.9042&lon=116.4074&time_offset_s=3600"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory, face_data: Path):  # noqa: ANN201
    """One kiosk: E001 Colin Powell enrolled from photos, an admin PIN, a daemon serving the screen."""
    require_chromium()
    work = tmp_path_factory.mktemp("ui")
    home = work / "kiosk"
    run_kiosk("init", str(home), "--branch", "B017", check=True)
    config = home / "kiosk.toml"
    colin = face_data / "Colin_Powell"
    run_kiosk("enroll", "add", *CONSENT_ARGS, "--config", str(config), "--employee", "E001", "--name", "Colin Powell",
              "--photos", str(colin / "Colin_Powell_0001.jpg"), str(colin / "Colin_Powell_0003.jpg"), check=True)
    run_kiosk("admin", "set-pin", "--config", str(config), "--pin-stdin", input_text=PIN + "\n", check=True)
    # On the roster (as the hub sends new hires) but without a face yet: waiting for enrolment.
    run_kiosk("employee", "add", "E002", "--name", "Vladimir Putin", "--config", str(config), check=True)
    scene = Scene(work / "camera")
    scene.idle()
    reader = PtyDevice(work / "ttyUSB-reader")
    port = free_port()
    daemon = Daemon(config, [
        f"camera.source=images:{scene.folder}?fps=8&loop=1", "liveness.enabled=false",
        "ui.enabled=true", f"ui.port={port}", "ui.language=zh", f"ui.branch_title={BRANCH}",
        "ui.result_display_s=3", "ui.admin_idle_logout_s=15", "face.max_embeds_per_walkup=6",
        "punch.debounce_s=600",  # a second punch in this run is always "already punched", however slow the run
        f"rfid.port={reader.path}", "rfid.protocol=line", "rfid.hold_off_s=0.1",
        "sync.hub_url=http://127.0.0.1:9", "device.timezone=Asia/Shanghai",
        # A field device far from its branch, whose GPS clock is off by an hour: punches are kept but
        # flagged outside the area, and the time stays unverified.
        f"gps.port={FAR_AWAY_GPS}", f"geofence.lat={BRANCH_LAT}", f"geofence.lon={BRANCH_LON}",
        "geofence.policy=flag",
    ], work)
    url = f"http://127.0.0.1:{port}/"
    daemon.start(url)
    try:
        yield {"daemon": daemon, "scene": scene, "reader": reader, "url": url, "config": config, "face_data": face_data}
    finally:
        code = daemon.stop()
        reader.close()
        assert code == 0, daemon.log()


@pytest.fixture(scope="module")
def chrome(kiosk):  # noqa: ANN001, ANN201
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(kiosk, chrome):  # noqa: ANN001, ANN201
    page = new_page(chrome)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_screen(page, kiosk["url"] + "?lang=en")
    yield page
    page.context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("KIOSK_UI_SCREENSHOTS") or REPO / "test-artifacts" / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_screen(page, url: str) -> None:  # noqa: ANN001
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)


def expect():  # noqa: ANN201
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect


def local_hhmm(moment: datetime | None = None, ago_s: float = 0) -> str:
    """The branch's local HH:MM (Asia/Shanghai) of ``moment`` (default now), ``ago_s`` earlier."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo
    return ((moment or datetime.now(UTC)) - timedelta(seconds=ago_s)).astimezone(ZoneInfo("Asia/Shanghai")).strftime(
        "%H:%M")


def settled(page) -> None:  # noqa: ANN001
    """Wait until the screen's transitions have finished (for a screenshot that shows the end state)."""
    page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')", timeout=WAIT_MS)


def store_of(kiosk):  # noqa: ANN001, ANN201
    return open_store(load_config(kiosk["config"]))


def events(kiosk) -> list[dict]:  # noqa: ANN001
    lines = kiosk["daemon"].events_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def photos(kiosk, identity: str, names: range) -> list[Path]:  # noqa: ANN001
    folder = kiosk["face_data"] / identity
    return [folder / f"{identity}_{i:04d}.jpg" for i in names]


def back_to_idle(kiosk, page) -> None:  # noqa: ANN001
    kiosk["scene"].idle()
    expect()(page.locator("#screen-result")).to_be_hidden(timeout=WAIT_MS)
    # The walk-up ends once the face has been missing from more than face.track_grace_frames (5)
    # frames the daemon looked at; only then is the next face a new walk-up.
    wait_for_idle_frames(kiosk["url"], TRACK_GRACE_FRAMES + 2)


# -- the teller's screen ------------------------------------------------------------------------

def test_idle_screen(page, shots: Path) -> None:  # noqa: ANN001
    expect()(page.locator("#prompt")).to_have_text("Please look at the camera")
    expect()(page.locator("#prompt-other")).to_have_text("请看摄像头")
    expect()(page.locator("#branch-name")).to_have_text(BRANCH)
    before = local_hhmm(ago_s=2)  # the clock ticks once a second
    expect()(page.locator("#clock")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    assert page.inner_text("#clock") in (before, local_hhmm())  # the branch's zone, not the browser's
    expect()(page.locator("#preview")).not_to_have_js_property("naturalWidth", 0, timeout=WAIT_MS)  # live MJPEG
    expect()(page.locator("#screen-result")).to_be_hidden()
    # The clock is not verified here (the GPS is an hour off), but that is for admins: health page, results.
    assert "Clock not yet verified" not in page.inner_text("body") and page.locator("#notice").count() == 0
    page.screenshot(path=str(shots / "idle-en.png"))
    sizes = page.evaluate("""() => ['clock', 'prompt'].map(id =>
        parseFloat(getComputedStyle(document.getElementById(id)).fontSize))""")
    assert sizes[0] >= 90 and sizes[1] >= 30  # px on an 800x480 panel: readable from 1 m


def test_language_default_query_and_switch(kiosk, chrome, page, shots: Path) -> None:  # noqa: ANN001
    other = new_page(chrome)
    open_screen(other, kiosk["url"])  # no ?lang: the configured default (ui.language = zh)
    expect()(other.locator("#prompt")).to_have_text("请看摄像头")
    expect()(other.locator("#admin-open")).to_have_text("管理")
    other.screenshot(path=str(shots / "idle-zh.png"))
    other.click("button.lang[data-lang=en]")
    expect()(other.locator("#prompt")).to_have_text("Please look at the camera")
    assert other.url.endswith("?lang=en")
    other.context.close()
    page.click("button.lang[data-lang=zh]")
    expect()(page.locator("#prompt")).to_have_text("请看摄像头")
    page.click("button.lang[data-lang=en]")
    expect()(page.locator("#prompt")).to_have_text("Please look at the camera")


def test_recognised_punch_appears_live(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    before = local_hhmm()
    kiosk["scene"].show(photos(kiosk, "Colin_Powell", range(5, 6)))
    result = page.locator("#screen-result")
    expect()(result).to_be_visible(timeout=WAIT_MS)
    expect()(result).to_have_class(re.compile("tone-ok"))
    expect()(page.locator("#result-title")).to_have_text("Clocked in")  # the first punch of the day
    expect()(page.locator("#result-name")).to_have_text("Colin Powell")
    expect()(page.locator("#result-method")).to_have_text("Face")
    note = page.locator("#result-note")
    expect()(note).to_contain_text("Time not yet verified — it will be corrected automatically")
    expect()(note).to_contain_text("Recorded outside the branch area")
    assert page.inner_text("#result-time") in (before, local_hhmm())  # the branch's time zone
    settled(page)
    page.screenshot(path=str(shots / "result-punched.png"))
    sizes = page.evaluate("""() => ['result-name', 'result-time'].map(id =>
        parseFloat(getComputedStyle(document.getElementById(id)).fontSize))""")
    assert sizes[0] >= 50 and sizes[1] >= 70
    punched = [e for e in events(kiosk) if e["kind"] == "punched"]
    assert punched[-1]["employee_id"] == "E001" and punched[-1]["method"] == "face"
    back_to_idle(kiosk, page)


def test_second_walk_up_says_already_punched(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    kiosk["scene"].show(photos(kiosk, "Colin_Powell", range(6, 7)))
    expect()(page.locator("#result-title")).to_have_text(re.compile(r"^Already punched at \d\d:\d\d$"), timeout=WAIT_MS)
    expect()(page.locator("#screen-result")).to_have_class(re.compile("tone-warn"))
    page.screenshot(path=str(shots / "result-already-punched.png"))
    back_to_idle(kiosk, page)


def test_a_stranger_is_told_to_use_the_card(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    kiosk["scene"].show(photos(kiosk, "George_W_Bush", range(1, 2)))
    expect()(page.locator("#result-title")).to_have_text("Not recognised — please use your card", timeout=WAIT_MS)
    expect()(page.locator("#screen-result")).to_have_class(re.compile("tone-bad"))
    page.screenshot(path=str(shots / "result-not-recognised.png"))
    back_to_idle(kiosk, page)


def test_a_masked_stranger_is_asked_to_lower_the_mask(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    from kiosk.face.conditions import CONDITIONS
    from kiosk.face.config import FaceConfig, QualityConfig
    from kiosk.face.engine import FaceEngine
    from kiosk.face.images import read_image

    engine = FaceEngine.from_config(FaceConfig(), QualityConfig())
    photo = read_image(photos(kiosk, "George_W_Bush", range(2, 3))[0])
    masked = CONDITIONS["mask"](photo, engine.choose(engine.detect_photo(photo), photo.shape), 0)
    kiosk["scene"].show([masked])
    expect()(page.locator("#prompt")).to_have_text("Please lower your mask for a moment", timeout=WAIT_MS)
    expect()(page.locator("#prompt-other")).to_have_text("请暂时拉下口罩")
    page.screenshot(path=str(shots / "hint-lower-mask.png"))
    expect()(page.locator("#result-title")).to_have_text("Not recognised — please use your card", timeout=WAIT_MS)
    back_to_idle(kiosk, page)


# -- admin mode ---------------------------------------------------------------------------------

def type_pin(page, pin: str) -> None:  # noqa: ANN001
    for digit in pin:
        page.click(f".pinpad [data-digit='{digit}']")
    page.click("#pin-ok")


def test_admin_login(page, shots: Path) -> None:  # noqa: ANN001
    page.click("#admin-open")
    expect()(page.locator("#admin-login")).to_be_visible()
    page.screenshot(path=str(shots / "admin-login.png"))
    type_pin(page, "111111")
    expect()(page.locator("#pin-message")).to_have_text("Wrong PIN — 4 tries left")
    type_pin(page, PIN)
    expect()(page.locator("#admin-main")).to_be_visible()
    expect()(page.locator(".tabs [data-tab=enrol]")).to_have_class(re.compile("current"))


def test_guided_enrolment_end_to_end(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    page.locator("#enrol-roster button", has_text="E002").click()  # picked from the roster
    expect()(page.locator("#enrol-id")).to_have_value("E002")
    expect()(page.locator("#enrol-name")).to_have_value("Vladimir Putin")
    page.fill("#enrol-card", "12345678")  # as printed without its leading zeros: stored as the reader reads it
    page.click("#enrol-form button[type=submit]")
    expect()(page.locator("#admin-message")).to_contain_text("consent")  # no consent, no face
    page.check("#enrol-consent")
    page.click("#enrol-form button[type=submit]")
    expect()(page.locator("#enrol-capture")).to_be_visible()
    expect()(page.locator("#enrol-guidance")).to_have_text("Look at the camera")  # nobody in view yet
    kiosk["scene"].show(photos(kiosk, "Vladimir_Putin", range(1, 11)))
    expect()(page.locator("#enrol-samples")).to_contain_text("of 5 samples", timeout=WAIT_MS)
    expect()(page.locator("#enrol-guidance")).to_have_text(
        "Recognised — enrolment complete (5 samples saved)", timeout=WAIT_MS)
    page.screenshot(path=str(shots / "admin-enrol-done.png"))
    kiosk["scene"].idle()
    # The enrolment keeps the camera until closed: once it has taken in the empty counter, closing it
    # hands the camera back with nobody in view, so nobody is punched.
    wait_for_idle_frames(kiosk["url"], 1)
    page.click("#enrol-close")
    expect()(page.locator("#enrol-form")).to_be_visible()  # the close request has been answered
    with store_of(kiosk) as store:
        putin = store.roster.get("E002")
        assert putin.templates == 5 and putin.cards == ("0012345678",)
        queued = store.query("SELECT * FROM enrolment_outbox WHERE employee_id = 'E002'")
        assert len(queued) == 1 and queued[0]["source"] == "device" and len(json.loads(queued[0]["template_ids"])) == 5
        assert {"enroll.start", "enroll.guided", "enroll.close"} <= {r["action"] for r in store.audit_log(50)}
    assert not [e for e in events(kiosk) if e["kind"] == "punched" and e.get("employee_id") == "E002"]


def test_duplicate_warning_before_saving(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    page.fill("#enrol-id", "E003")
    page.fill("#enrol-name", "Someone Else")
    page.check("#enrol-consent")
    page.click("#enrol-form button[type=submit]")
    kiosk["scene"].show(photos(kiosk, "Colin_Powell", range(4, 11)))
    warning = page.locator("#enrol-warning-text")
    expect()(warning).to_be_visible(timeout=WAIT_MS)
    expect()(warning).to_contain_text("This face already matches employee E001 Colin Powell")
    page.screenshot(path=str(shots / "admin-enrol-duplicate.png"))
    page.click("#enrol-refuse")
    expect()(page.locator("#enrol-guidance")).to_have_text("Enrolment cancelled — nothing was saved")
    kiosk["scene"].idle()
    wait_for_idle_frames(kiosk["url"], 1)  # as above: nobody in view when the camera goes back
    page.click("#enrol-close")
    expect()(page.locator("#enrol-form")).to_be_visible()  # the close request has been answered
    with store_of(kiosk) as store:
        assert store.roster.get("E003") is None
        assert "enroll.duplicate_refused" in {r["action"] for r in store.audit_log(20)}


def employee_row(page, employee_id: str):  # noqa: ANN001, ANN201
    return page.locator(f"#employee-rows tr[data-employee='{employee_id}']")


def test_add_a_card_by_reading_it(kiosk, page) -> None:  # noqa: ANN001
    page.click(".tabs [data-tab=employees]")
    page.fill("#employee-search", "Putin")
    row = employee_row(page, "E002")
    expect()(row).to_be_visible()
    expect()(page.locator("#employee-rows tr")).to_have_count(1)
    row.locator("[data-action=add-card]").click()
    expect()(page.locator("#admin-message")).to_contain_text("Tap Vladimir Putin's card on the reader")
    kiosk["reader"].write(b"0087654321\r\n")
    expect()(page.locator("#admin-message")).to_have_text("Card 0087654321 added for Vladimir Putin", timeout=WAIT_MS)
    expect()(row.locator("[data-action=card]")).to_have_count(2)
    row.locator("[data-action=card]", has_text="0012345678").click()
    expect()(page.locator("#dialog-text")).to_have_text("Remove card 0012345678 from Vladimir Putin?")
    page.click("#dialog-ok")
    expect()(page.locator("#admin-message")).to_have_text("Card 0012345678 removed from Vladimir Putin")
    expect()(row.locator("[data-action=card]")).to_have_count(1)


def test_manual_punch_and_health(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    page.click(".tabs [data-tab=punch]")
    page.fill("#punch-id", "E002")
    page.click("#punch-form button[type=submit]")  # no reason: the form asks for one
    page.fill("#punch-reason", "card left at home")
    page.select_option("#punch-direction", "IN")
    page.click("#punch-form button[type=submit]")
    recorded = re.compile(r"^Punch recorded for Vladimir Putin at Clock in \d\d:\d\d$")
    expect()(page.locator("#admin-message")).to_have_text(recorded)
    # A second one minutes later: the screen asks before recording it (direction by the rule: OUT).
    page.fill("#punch-id", "E002")
    page.fill("#punch-reason", "left early, reader busy")
    page.click("#punch-form button[type=submit]")
    expect()(page.locator("#dialog-text")).to_contain_text("already got a manual punch")
    page.screenshot(path=str(shots / "admin-punch-confirm.png"))
    page.click("#dialog-ok")
    expect()(page.locator("#admin-message")).to_have_text(
        re.compile(r"^Punch recorded for Vladimir Putin at Clock out \d\d:\d\d$"))
    with store_of(kiosk) as store:
        first, last = list(store.punches.iter())[-2:]
        assert (first.method, first.kind, first.direction, first.note) == ("manual", "correction", "IN",
                                                                           "card left at home")
        assert (last.kind, last.direction, last.author) == ("correction", "OUT", first.author) and last.author
    page.click(".tabs [data-tab=health]")
    health = page.locator("#health-rows")
    expect()(health).to_contain_text("Camera")
    text = health.inner_text()
    assert "working" in text and "Card reader" in text and "Face model" in text
    # E001 (`kiosk enroll add --photos`) and E002 (guided, above): both wait for a hub to register with.
    assert re.search(r"Enrolments not yet at the hub\s+2\b", text), text
    assert re.search(r"Last punch\s+today \d\d:\d\d", text) and "not verified · GPS" in text
    page.screenshot(path=str(shots / "admin-health-en.png"))


def test_health_page_reads_in_chinese_and_fits_the_panel(page, shots: Path) -> None:  # noqa: ANN001
    page.evaluate("Screen.setLanguage('zh', true)")  # what the 中文 button does (admin mode covers it)
    health = page.locator("#health-rows")
    expect()(health).to_contain_text("摄像头")
    text = health.inner_text()
    # Device reasons, clock source, durations and times in Chinese: no English sentence, no raw UTC.
    assert re.search(r"摄像头\s+正常 — 640×480 画面，来自 images:", text), text
    assert re.search(r"读卡器\s+正常 — 正在监听 .*（line，9600 波特）", text), text
    assert "未校准 · GPS 卫星授时" in text and "偏差" in text
    assert re.search(r"运行时间\s+(\d+ 秒|\d+ 分钟)", text) and re.search(r"最近打卡\s+今天 \d\d:\d\d", text)
    for english in ("frames from", "listening on", "none", "hub", "UTC", "T0", "Z\n"):
        assert english not in text, english
    # Everything on an 800x480 panel without scrolling.
    assert page.evaluate("() => document.getElementById('admin').scrollHeight <= innerHeight"), "health page scrolls"
    page.screenshot(path=str(shots / "admin-health-zh.png"))
    page.evaluate("Screen.setLanguage('en', true)")


def test_card_punch_after_logout(kiosk, page) -> None:  # noqa: ANN001
    page.click("#admin-logout")
    expect()(page.locator("#admin")).to_be_hidden()
    with store_of(kiosk) as store:
        manual = store.punches.last_for("E002")  # the manual punch above, inside punch.debounce_s
    kiosk["reader"].write(b"0087654321\r\n")
    at = local_hhmm(datetime.fromisoformat(manual.ts_utc.replace("Z", "+00:00")))
    expect()(page.locator("#result-title")).to_have_text(f"Already punched at {at}", timeout=WAIT_MS)
    expect()(page.locator("#result-name")).to_have_text("Vladimir Putin")
    expect()(page.locator("#screen-result")).to_be_hidden(timeout=WAIT_MS)
    with store_of(kiosk) as store:
        assert store.punches.last_for("E002").id == manual.id


def test_erase_an_employee(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    page.click("#admin-open")
    type_pin(page, PIN)
    page.click(".tabs [data-tab=employees]")
    page.fill("#employee-search", "E002")
    page.evaluate("Screen.setLanguage('zh', true)")
    employee_row(page, "E002").locator("[data-action=erase]").click()
    expect()(page.locator("#dialog-text")).to_contain_text("删除 E002 Vladimir Putin？")
    page.fill("#dialog-input", "离职")
    page.screenshot(path=str(shots / "admin-erase-confirm-zh.png"))
    page.click("#dialog-cancel")
    page.evaluate("Screen.setLanguage('en', true)")
    employee_row(page, "E002").locator("[data-action=erase]").click()
    expect()(page.locator("#dialog-text")).to_contain_text("Erase E002 Vladimir Putin?")
    # Destructive: a red button that stays disabled until a reason is given.
    ok = page.locator("#dialog-ok")
    expect()(ok).to_have_class("danger")
    assert page.evaluate("() => getComputedStyle(document.getElementById('dialog-ok')).backgroundColor") == \
        "rgb(179, 38, 30)"
    expect()(ok).to_be_disabled()
    page.fill("#dialog-input", "   ")
    expect()(ok).to_be_disabled()
    page.fill("#dialog-input", "left the bank")
    expect()(ok).to_be_enabled()
    page.screenshot(path=str(shots / "admin-erase-confirm-en.png"))
    page.click("#dialog-ok")
    expect()(page.locator("#admin-message")).to_have_text(
        "E002 erased: face samples overwritten: 5, cards removed: 1")
    expect()(employee_row(page, "E002")).to_have_count(0)
    with store_of(kiosk) as store:
        erased = store.roster.get("E002")
        assert not erased.active and erased.templates == 0 and erased.cards == ()
        assert store.query("SELECT count(*) AS n FROM templates WHERE employee_id = 'E002'")[0]["n"] == 0
        assert store.query("SELECT count(*) AS n FROM enrolment_outbox WHERE employee_id = 'E002'")[0]["n"] == 0
        assert store.punches.last_for("E002") is not None  # punches stay
        erase = next(r for r in store.audit_log(20) if r["action"] == "employee.erase")
        assert erase["actor"] == "kiosk-admin" and json.loads(erase["detail"])["reason"] == "left the bank"
    # The server insists too: no erase without a reason.
    refused = page.evaluate("""async () => (await Admin.api('POST', '/api/admin/employees/E001/erase',
                                                              { reason: ' ' })).data""")
    assert refused["error"] == "erase_reason_required"


def test_idle_admin_mode_logs_out_by_itself(page) -> None:  # noqa: ANN001
    expect()(page.locator("#admin-main")).to_be_visible()
    expect()(page.locator("#admin")).to_be_hidden(timeout=25_000)  # ui.admin_idle_logout_s = 15
    expect()(page.locator("#toast")).to_have_text("Admin mode logged out (idle)")


def test_lockout_after_five_wrong_pins(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    page.click("#admin-open")
    for remaining in (4, 3, 2, 1):
        type_pin(page, "000000")
        expect()(page.locator("#pin-message")).to_have_text(f"Wrong PIN — {remaining} tries left")
    type_pin(page, "000000")
    expect()(page.locator("#pin-message")).to_have_text("Too many wrong PINs — admin mode is locked for 5 min")
    type_pin(page, PIN)  # even the right PIN, while locked
    expect()(page.locator("#pin-message")).to_have_text("Too many wrong PINs — admin mode is locked for 5 min")
    expect()(page.locator("#admin-main")).to_be_hidden()
    page.screenshot(path=str(shots / "admin-locked.png"))
    with store_of(kiosk) as store:
        assert "admin.lockout" in {r["action"] for r in store.audit_log(20)}
    page.click("#admin-login [data-action=close-admin]")


def test_camera_offline_turns_the_screen_to_cards(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    kiosk["scene"].empty()
    expect()(page.locator("#banner")).to_have_text("Camera offline — please use your card", timeout=WAIT_MS)
    expect()(page.locator("#screen-result")).to_be_hidden(timeout=WAIT_MS)  # the camera_offline result ends
    expect()(page.locator("#prompt")).to_have_text("Please tap your card")  # not "look at the camera"
    expect()(page.locator("#prompt-other")).to_have_text("请刷卡")
    expect()(page.locator("#preview")).to_be_hidden()  # no black box above the card prompt
    page.screenshot(path=str(shots / "camera-offline-en.png"))
    page.click("button.lang[data-lang=zh]")
    expect()(page.locator("#prompt")).to_have_text("请刷卡")
    expect()(page.locator("#banner")).to_have_text("摄像头离线 — 请刷卡")
    page.screenshot(path=str(shots / "camera-offline-zh.png"))
    page.click("button.lang[data-lang=en]")
    kiosk["reader"].write(b"0087654321\r\n")  # a card still punches (E002 was erased: the card is unknown now)
    expect()(page.locator("#result-title")).to_have_text("This card is not registered — please see an admin",
                                                       timeout=WAIT_MS)
    kiosk["scene"].idle()
    expect()(page.locator("#banner")).to_be_hidden(timeout=WAIT_MS)
    expect()(page.locator("#prompt")).to_have_text("Please look at the camera", timeout=WAIT_MS)
    expect()(page.locator("#preview")).to_be_visible()


def test_a_stopped_daemon_shows_out_of_service_and_comes_back(kiosk, page, shots: Path) -> None:  # noqa: ANN001
    expect()(page.locator("#preview")).not_to_have_js_property("naturalWidth", 0, timeout=WAIT_MS)
    assert kiosk["daemon"].stop() == 0
    offline = page.locator("#screen-offline")
    expect()(offline).to_be_visible(timeout=WAIT_MS)
    expect()(offline).to_contain_text("Out of service")
    expect()(page.locator("#offline-text")).to_have_text(re.compile("by face or by card"))
    # No frozen camera frame with its green face box, no "look at the camera".
    expect()(page.locator("#screen-idle")).to_be_hidden()
    assert page.evaluate("() => document.getElementById('preview').getAttribute('src')") is None
    expect()(page.locator("#admin-open")).to_be_hidden()
    page.screenshot(path=str(shots / "out-of-service-en.png"))
    page.click("button.lang[data-lang=zh]")
    expect()(offline).to_contain_text("暂停服务")
    page.screenshot(path=str(shots / "out-of-service-zh.png"))
    kiosk["daemon"].start(kiosk["url"])
    # The page notices by itself and starts afresh (in the language chosen).
    expect()(page.locator("#prompt")).to_have_text("请看摄像头", timeout=WAIT_MS)
    expect()(offline).to_be_hidden()
    expect()(page.locator("#preview")).not_to_have_js_property("naturalWidth", 0, timeout=WAIT_MS)
    page.click("button.lang[data-lang=en]")


def test_the_browser_unit_waits_for_this_screen(kiosk) -> None:  # noqa: ANN001
    unit = (REPO / "systemd" / "kiosk-browser.service").read_text()
    assert f"KIOSK_URL=http://127.0.0.1:{UiConfig().port}/" in unit and "--kiosk ${KIOSK_URL}" in unit
    up = run_kiosk_module("kiosk.ui.wait", kiosk["url"], "5")
    assert up.returncode == 0, up.stderr
    down = run_kiosk_module("kiosk.ui.wait", f"http://127.0.0.1:{free_port()}/", "1")
    assert down.returncode == 1 and "did not answer" in down.stderr


def run_kiosk_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60)


def test_card_only_kiosk_refuses_a_punch_outside_the_branch(chrome, tmp_path: Path) -> None:  # noqa: ANN001
    """A second, card-only kiosk (no camera, no models) whose geofence refuses punches from afar."""
    home = tmp_path / "kiosk"
    run_kiosk("init", str(home), check=True)
    config = home / "kiosk.toml"
    run_kiosk("employee", "add", "E500", "--name", "Field Manager", "--card", "0055667788", "--config", str(config),
              check=True)
    reader, port = PtyDevice(tmp_path / "ttyUSB-field"), free_port()
    daemon = Daemon(config, ["ui.enabled=true", f"ui.port={port}", f"rfid.port={reader.path}", "rfid.protocol=line",
                             f"gps.port={FAR_AWAY_GPS}", f"geofence.lat={BRANCH_LAT}", f"geofence.lon={BRANCH_LON}",
                             "geofence.policy=refuse"], tmp_path)
    url = f"http://127.0.0.1:{port}/"
    daemon.start(url)
    try:
        page = new_page(chrome)
        open_screen(page, url)
        expect()(page.locator("#prompt")).to_have_text("Please tap your card")  # no camera here
        expect()(page.locator("#preview")).to_have_count(0)
        daemon.wait_log("gps: ", "-> running")  # the fake receiver's first fix
        daemon.wait_log("rfid: ", "-> running")
        reader.write(b"0055667788\r\n")
        expect()(page.locator("#result-title")).to_have_text("Outside the branch area — punch not recorded",
                                                           timeout=WAIT_MS)
        expect()(page.locator("#screen-result")).to_have_class(re.compile("tone-bad"))
        expect()(page.locator("#result-name")).to_have_text("Field Manager")
        page.context.close()
    finally:
        assert daemon.stop() == 0, daemon.log()
        reader.close()
    with open_store(load_config(config)) as store:
        assert store.punches.last_for("E500") is None


def test_with_liveness_on_the_screen_asks_for_a_blink_up_front(chrome, face_data: Path, tmp_path: Path,
                                                                 shots: Path) -> None:  # noqa: ANN001
    """Liveness on: the idle prompt asks for the blink before anyone fails, and a walk-up without one is
    told so beside the camera picture, which stays in view."""
    config, scene, daemon, url = _liveness_kiosk(face_data, tmp_path, "liveness.mode=blink", "liveness.window_s=2")
    try:
        page = new_page(chrome)
        open_screen(page, url + "?lang=en")
        expect()(page.locator("#prompt")).to_have_text("Please look at the camera and blink")
        expect()(page.locator("#prompt-other")).to_have_text("请看摄像头并眨眼")
        expect()(page.locator("#preview")).not_to_have_js_property("naturalWidth", 0, timeout=WAIT_MS)
        page.screenshot(path=str(shots / "idle-liveness-en.png"))
        page.click("button.lang[data-lang=zh]")
        page.screenshot(path=str(shots / "idle-liveness-zh.png"))
        page.click("button.lang[data-lang=en]")
        scene.show(photos({"face_data": face_data}, "Colin_Powell", range(5, 6)))  # a still photo: no blink
        prompt = page.locator("#prompt")
        expect()(prompt).to_have_text("No blink seen — please blink once", timeout=WAIT_MS)
        expect()(prompt).to_have_class(re.compile("prompt-alert"))
        expect()(page.locator("#screen-result")).to_be_hidden()
        expect()(page.locator("#preview")).to_be_visible()  # the person still sees themselves
        page.screenshot(path=str(shots / "not-live-en.png"))
        page.click("button.lang[data-lang=zh]")
        expect()(prompt).to_have_text("未检测到眨眼 — 请眨一下眼")
        page.screenshot(path=str(shots / "not-live-zh.png"))
        page.context.close()
    finally:
        assert daemon.stop() == 0, daemon.log()
    with open_store(load_config(config)) as store:
        assert store.punches.last_for("E001") is None  # a photo never punches


def test_the_liveness_challenge_is_shown_up_front_beside_the_picture(chrome, face_data: Path, tmp_path: Path,
                                                                      shots: Path) -> None:  # noqa: ANN001
    """liveness.mode = challenge: as soon as a face is there, the screen shows the random steps as large
    icons beside the camera picture, which stays in view; a challenge not done in time is said so, a new
    one follows, and a photo never punches."""
    config, scene, daemon, url = _liveness_kiosk(face_data, tmp_path, "liveness.mode=challenge",
                                                 "liveness.challenge_timeout_s=4")
    try:
        page = new_page(chrome)
        open_screen(page, url + "?lang=en")
        expect()(page.locator("#prompt")).to_have_text("Please look at the camera")
        expect()(page.locator("#challenge")).to_be_hidden()
        scene.show(photos({"face_data": face_data}, "Colin_Powell", range(5, 6)))
        steps = page.locator("#challenge li.challenge-step")
        expect()(steps).to_have_count(2, timeout=WAIT_MS)
        expect()(page.locator("#prompt")).to_have_text("Please do these in order")
        expect()(page.locator("#challenge li.current")).to_have_count(1)
        expect()(page.locator("#preview")).to_be_visible()  # the person still sees themselves
        expect()(page.locator("#preview")).not_to_have_js_property("naturalWidth", 0, timeout=WAIT_MS)
        names = steps.evaluate_all("items => items.map(i => i.dataset.step)")
        announced = [e for e in _events(tmp_path) if e["kind"] == "challenge"]
        assert names == announced[-1]["challenge"].split(",") and len(set(names)) == 2
        labels = {"turn_left": "Turn your head left", "turn_right": "Turn your head right", "blink": "Blink"}
        expect()(page.locator("#challenge .challenge-label").first).to_have_text("1. " + labels[names[0]])
        box, picture = page.locator("#challenge").bounding_box(), page.locator("#preview").bounding_box()
        assert box["x"] >= picture["x"] + picture["width"], "the challenge is beside the picture, not over it"
        settled(page)
        page.screenshot(path=str(shots / "challenge-en.png"))
        page.click("button.lang[data-lang=zh]")
        expect()(page.locator("#prompt")).to_have_text("请按顺序完成")
        settled(page)
        page.screenshot(path=str(shots / "challenge-zh.png"))
        # A photo cannot do it: the attempt fails, is said so, and a new challenge is drawn.
        expect()(page.locator("#prompt")).to_have_text("未按提示完成 — 请按新的提示再试", timeout=WAIT_MS)
        expect()(steps).to_have_count(2)
        page.context.close()
    finally:
        assert daemon.stop() == 0, daemon.log()
    kinds = [e["kind"] for e in _events(tmp_path)]
    assert "not_live" in kinds and kinds.count("challenge") >= 2 and "punched" not in kinds
    with open_store(load_config(config)) as store:
        assert store.punches.last_for("E001") is None  # a photo never punches


def _liveness_kiosk(face_data: Path, tmp_path: Path, *sets: str) -> tuple[Path, Scene, Daemon, str]:
    """A kiosk with Colin Powell enrolled, liveness on (``sets`` choose how), an idle camera scene, started."""
    home = tmp_path / "kiosk"
    run_kiosk("init", str(home), check=True)
    config = home / "kiosk.toml"
    colin = face_data / "Colin_Powell"
    run_kiosk("enroll", "add", *CONSENT_ARGS, "--config", str(config), "--employee", "E001", "--name", "Colin Powell",
              "--photos", str(colin / "Colin_Powell_0001.jpg"), str(colin / "Colin_Powell_0003.jpg"), check=True)
    scene = Scene(tmp_path / "camera")
    scene.idle()
    port = free_port()
    daemon = Daemon(config, [f"camera.source=images:{scene.folder}?fps=8&loop=1", "liveness.enabled=true", *sets,
                             f"ui.port={port}", "ui.result_display_s=10", f"ui.branch_title={BRANCH}"], tmp_path)
    url = f"http://127.0.0.1:{port}/"
    daemon.start(url)
    return config, scene, daemon, url


def _events(workdir: Path) -> list[dict]:
    lines = (workdir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]
