"""punch.direction = buttons on the real screen: a card read at a card-only kiosk (`python -m kiosk run`, a
card reader on a real pty) brings up 上班 / 下班 with auto's choice pre-selected; tapping the other one in a
real headless Chromium records that direction. Screenshots (zh/en at 800x480) go with the screen's others."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from ui_support import Daemon, chromium, free_port, new_page, require_chromium

from conftest import REPO, PtyDevice, run_kiosk
from kiosk.config import load_config
from kiosk.store import open_store

WAIT_MS = 20_000
CARD = "0055667788"
# Long enough that the test's tap always comes first; the timeout path is the daemon scenario's.
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    require_chromium()
    work = tmp_path_factory.mktemp("buttons")
    home = work / "kiosk"
    run_kiosk("init", str(home), check=True)
    config = home / "kiosk.toml"
    run_kiosk("employee", "add", "E700", "--name", "王丽 Wang Li", "--card", CARD, "--config", str(config), check=True)
    reader, port = PtyDevice(work / "ttyUSB-reader"), free_port()
    daemon = Daemon(config, ["ui.enabled=true", f"ui.port={port}", "ui.language=zh", "ui.result_display_s=3",
                             f"rfid.port={reader.path}", "rfid.protocol=line", "rfid.hold_off_s=0.1",
                             "punch.debounce_s=0", "punch.direction=buttons",
                             f"punch.direction_buttons_timeout_s={TIMEOUT_S}", "device.timezone=Asia/Shanghai"], work)
    url = f"http://127.0.0.1:{port}/"
    daemon.start(url)
    try:
        daemon.wait_log("rfid: ", "-> running")
        yield {"daemon": daemon, "reader": reader, "url": url, "config": config}
    finally:
        code = daemon.stop()
        reader.close()
        assert code == 0, daemon.log()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("KIOSK_UI_SCREENSHOTS") or REPO / "test-artifacts" / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def expect():  # noqa: ANN201
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect


def punches(kiosk) -> list:  # noqa: ANN001
    with open_store(load_config(kiosk["config"])) as store:
        assert store.punches.verify().ok
        return list(store.punches.iter())


def ask(kiosk, page, selected: str) -> None:  # noqa: ANN001
    """Tap the card; the screen asks 上班 / 下班 with ``selected`` pre-selected and records nothing yet."""
    before = len(punches(kiosk))
    kiosk["reader"].write(CARD.encode() + b"\r\n")
    expect()(page.locator("#screen-choice")).to_be_visible(timeout=WAIT_MS)
    expect()(page.locator(f"#choose-{selected}")).to_have_class(re.compile("selected"))
    other = "OUT" if selected == "IN" else "IN"
    expect()(page.locator(f"#choose-{other}")).not_to_have_class(re.compile("selected"))
    expect()(page.locator("#choice-name")).to_have_text("王丽 Wang Li")
    assert len(punches(kiosk)) == before  # the direction is hashed: nothing is written until it is chosen


def test_tapping_the_other_button_records_it(kiosk, shots: Path) -> None:  # noqa: ANN001
    with chromium() as browser:
        page = new_page(browser)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(kiosk["url"], wait_until="domcontentloaded")  # ui.language = zh
        page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)

        ask(kiosk, page, "IN")  # the first punch of the day: 上班 pre-selected
        expect()(page.locator("#choice-title")).to_have_text("上班还是下班？")
        expect()(page.locator("#choose-IN")).to_have_text("上班")
        expect()(page.locator("#choice-countdown")).to_contain_text("秒后按“上班”记录")
        page.screenshot(path=str(shots / "direction-buttons-zh.png"))
        page.click("#choose-OUT")  # leaving early: 下班
        expect()(page.locator("#result-title")).to_have_text("下班打卡成功", timeout=WAIT_MS)
        expect()(page.locator("#result-name")).to_have_text("王丽 Wang Li")
        expect()(page.locator("#screen-choice")).to_be_hidden()
        page.screenshot(path=str(shots / "direction-result-out-zh.png"))
        first = punches(kiosk)[-1]
        assert (first.employee_id, first.method, first.direction, first.kind) == ("E700", "card", "OUT", "punch")
        expect()(page.locator("#screen-result")).to_be_hidden(timeout=WAIT_MS)

        page.click("button.lang[data-lang=en]")
        ask(kiosk, page, "IN")  # after an OUT, auto's choice is IN again
        expect()(page.locator("#choice-title")).to_have_text("Clock in or clock out?")
        expect()(page.locator("#choose-OUT")).to_have_text("Clock out")
        expect()(page.locator("#choice-countdown")).to_contain_text("Clock in in")
        page.screenshot(path=str(shots / "direction-buttons-en.png"))
        page.click("#choose-OUT")
        expect()(page.locator("#result-title")).to_have_text("Clocked out", timeout=WAIT_MS)
        page.screenshot(path=str(shots / "direction-result-out-en.png"))
        assert [p.direction for p in punches(kiosk)] == ["OUT", "OUT"]
        page.context.close()
        assert errors == [], errors
