"""`kiosk bench field`: a field punch from a phone, button press to confirmed punch, in headless Chromium.

Everything is real and local: the hub is a `kiosk hub serve` child process (SQLite in a temp folder, its face
engine on), the phone is Debian's Chromium driven by Playwright at 360x640 with a CDP virtual authenticator
(the passkey), an emulated location inside the employee's site and, as its front camera, a real face video
(../shared/videos) written as a Y4M file (kiosk/tools/fakecamera.py). Each round presses the button and waits
for the page to say the punch is stored: the hub's liveness challenge, the clip filmed and judged piece by
piece, the place, the passkey's assertion and the stored punch are all inside the figure.

A recorded video cannot follow a random challenge, so the hub runs in blink mode ([field] liveness_mode): the
figure includes waiting for the person in the clip to blink (the clip blinks about every 1-2 s; where in the
loop the camera is at the press is chance). The split "until live" / "live to stored" shows the hub's part.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from kiosk.cli.util import echo_json
from kiosk.tools.benchkit import fmt_spread, machine, machine_line, spread

CLIP = "blink_liveportrait_d13_phone_selfie.mp4"
CLIP_CUT_S = 4.0  # the first 4 s: three blinks, looping
SITE = (31.2304, 121.4737)
CONSENT = {"given_utc": "2026-01-05T08:00:00.000Z", "text_version": "face-2026-01", "language": "zh"}
# Marks in the page: the press, and each change of the status line (the bench's own observer, not the page's).
OBSERVE = """() => {
  window.benchMarks = [];
  const status = document.getElementById('status');
  new MutationObserver(() => window.benchMarks.push([performance.now(), status.dataset.state, status.textContent]))
    .observe(status, { attributes: true, childList: true, characterData: true, subtree: true });
  const challenge = document.getElementById('challenge');
  new MutationObserver(() => { if (!challenge.hidden) window.benchMarks.push([performance.now(), 'challenge', '']); })
    .observe(challenge, { attributes: true, attributeFilter: ['hidden'] });
  document.querySelectorAll('button.punch').forEach((b) => b.addEventListener('click',
    () => window.benchMarks.push([performance.now(), 'press', '']), { capture: true }));
}"""


def _hub_toml(folder: Path) -> Path:
    path = folder / "hub.toml"
    path.write_text('[server]\nhost = "127.0.0.1"\nport = 0\n[database]\nbackend = "sqlite"\nsqlite_path = "hub.db"\n'
                    '[faces]\nenabled = true\n[field]\nliveness_mode = "blink"\nattempts_per_minute = 600\n'
                    '[log]\nlevel = "WARNING"\n')
    return path


def _hr_client(config: Path, url: str) -> Any:
    import httpx

    from sync.hub import devices as hub_devices
    from sync.hub.config import load_hub_config
    from sync.hub.db import hub_db
    with hub_db(load_hub_config(config).database) as db:
        token = hub_devices.create_api_token(db, "hr", "bench")["token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _employee_and_link(hr: Any, clip: Path, origin: str) -> str:
    from kiosk.tools.fakecamera import enrolment_photos
    made = hr.post("/v1/hr/employees", json={"employee_id": "FB1", "name": "Bench Person", "branches": ["B001"],
                                             "photos": enrolment_photos(clip, [0.0, 5.0]), "consent": CONSENT})
    if made.status_code != 201:
        raise click.ClickException(f"enrolling the clip's person failed: {made.text}")
    sites = hr.put("/v1/hr/field/employees/FB1/sites", json={"policy": "flag", "sites": [
        {"name": "Client A", "lat": SITE[0], "lon": SITE[1], "radius_m": 150}]})
    link = hr.post("/v1/hr/field/pairings", json={"employee_id": "FB1"}, headers={"Host": origin.split("//")[1]})
    if sites.status_code != 204 or link.status_code != 201:
        raise click.ClickException(f"setting up the phone failed: {sites.text} {link.text}")
    return link.json()["link"]


def _phone(playwright: Any, chromium: Path, camera: Path) -> tuple[Any, Any]:
    browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}",
        "--host-resolver-rules=MAP localhost 127.0.0.1"])
    context = browser.new_context(viewport={"width": 360, "height": 640}, locale="en-GB",
                                  geolocation={"latitude": SITE[0], "longitude": SITE[1], "accuracy": 20},
                                  permissions=["geolocation", "camera"])
    page = context.new_page()
    page.set_default_timeout(60_000)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    pieces: list[float] = []
    page.on("requestfinished", lambda request: pieces.append(request.timing["responseEnd"])
            if request.url.endswith("/v1/field/punch/frames") else None)
    page.bench_pieces = pieces  # round trips of the clip's pieces (ms): the hub judging while the page films
    return browser, page


def _round(page: Any, origin: str, direction: str) -> dict[str, Any]:
    """One press: (seconds to live, live to stored, total) from the page's own clock, or the refusal."""
    page.goto(f"{origin}/field/")
    page.locator("#position", has_text="±").wait_for()
    page.locator(f"button.punch[data-direction={direction}]:enabled").wait_for()
    page.evaluate(OBSERVE)
    page.bench_pieces.clear()
    started = time.perf_counter()
    page.locator(f"button.punch[data-direction={direction}]").click()
    page.locator("#status[data-state=ok], #status[data-state=refused]").wait_for()
    wall = time.perf_counter() - started
    marks = page.evaluate("window.benchMarks")
    press = next(t for t, state, _ in marks if state == "press")
    filming = next((t for t, state, _ in marks if state == "challenge"), press)
    live = next((t for t, state, text in marks if state == "busy" and text.startswith("Checking")), None)
    end = next(t for t, state, _ in marks if state in ("ok", "refused"))
    state = page.locator("#status").get_attribute("data-state")
    return {"ok": state == "ok", "text": page.locator("#status").inner_text(), "wall_s": wall,
            "pieces_ms": list(page.bench_pieces),
            "total_s": (end - press) / 1000, "start_s": (filming - press) / 1000,
            "until_live_s": None if live is None else (live - press) / 1000,
            "after_live_s": None if live is None else (end - live) / 1000}


@click.command("field")
@click.option("--rounds", default=7, show_default=True, type=click.IntRange(5, 200), help="Timed punches "
              "(after one untimed warm-up punch that loads the hub's face models).")
@click.option("--clip", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=f"A blinking person's face video [default: {CLIP} in ../shared/videos].")
@click.option("--chromium", type=click.Path(path_type=Path), default=None,
              help="Debian's Chromium [default: $KIOSK_CHROMIUM or /usr/bin/chromium].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_field(rounds: int, clip: Path | None, chromium: Path | None, as_json: bool) -> None:
    """Field punch from a phone: button press to confirmed punch in headless Chromium, including the liveness
    clip (blink mode), place, passkey and storage; min/median/max over rounds."""
    from kiosk.tools.fakecamera import video_y4m
    from kiosk.tools.localhub import HubProcess
    from kiosk.tools.scenes import default_videos_dir
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise click.ClickException("this benchmark drives Chromium with Playwright, which is not installed") from None
    chromium = chromium or Path(os.environ.get("KIOSK_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        raise click.ClickException(f"{chromium} not found: install Debian's chromium or give --chromium")
    if clip is None:
        videos = default_videos_dir()
        if videos is None or not (videos / CLIP).is_file():
            raise click.ClickException(f"{CLIP} not found in ../shared/videos: give --clip FILE")
        clip = videos / CLIP
    results = []
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-field-") as tmp, \
            HubProcess(_hub_toml(Path(tmp)), log_path=Path(tmp) / "hub.log") as hub:
        origin = f"http://localhost:{hub.port}"
        camera = video_y4m(clip, Path(tmp) / "camera.y4m", 0.0, CLIP_CUT_S)
        with _hr_client(hub.config_path, hub.url) as hr:
            link = _employee_and_link(hr, clip, origin)
        with sync_playwright() as playwright:
            browser, page = _phone(playwright, chromium, camera)
            try:
                page.goto(link)
                page.locator("#pair:enabled").click()
                page.locator("#status[data-state=ok], #status[data-state=refused]").wait_for()
                if page.locator("#status").get_attribute("data-state") != "ok":
                    raise click.ClickException(f"pairing failed: {page.locator('#status').inner_text()}")
                _round(page, origin, "IN")  # warm-up: the hub loads its face and landmark models
                for index in range(rounds):
                    results.append(_round(page, origin, ("OUT", "IN")[index % 2]))
            finally:
                browser.close()
    _print(_summary(results), as_json)


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in results if r["ok"]]
    return {
        "rounds": len(results), "stored": len(done), "refused": [r["text"] for r in results if not r["ok"]],
        "total_s": spread([r["total_s"] for r in done]), "wall_s": spread([r["wall_s"] for r in done]),
        "until_live_s": spread([r["until_live_s"] for r in done]),
        "after_live_s": spread([r["after_live_s"] for r in done]),
        "start_s": spread([r["start_s"] for r in done]),
        "piece_ms": spread([ms for r in done for ms in r["pieces_ms"]], 1),
        "pieces_per_punch": spread([len(r["pieces_ms"]) for r in done], 1),
        "per_round_total_s": [round(r["total_s"], 3) for r in results],
        "machine": machine(),
    }


def _print(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(r)
        return
    click.echo(f"field punch, button press -> confirmed punch, headless Chromium at 360x640, hub in blink mode "
               f"(a recorded clip cannot follow a random challenge): {r['stored']} of {r['rounds']} punches stored")
    click.echo(f"  press -> stored:             {fmt_spread(r['total_s'], ' s')}")
    click.echo(f"    press -> challenge shown:  {fmt_spread(r['start_s'], ' s')}")
    click.echo(f"    press -> clip judged live: {fmt_spread(r['until_live_s'], ' s')}  (waits for the clip's blink)")
    click.echo(f"    live -> stored:            {fmt_spread(r['after_live_s'], ' s')}  (place, passkey, punch)")
    click.echo(f"  hub's answer to a piece of the clip: {fmt_spread(r['piece_ms'], ' ms', 0)}, "
               f"{fmt_spread(r['pieces_per_punch'], '', 0)} pieces a punch")
    click.echo(f"  per round (s): {', '.join(f'{v:.2f}' for v in r['per_round_total_s'])}")
    if r["refused"]:
        click.echo(f"  refused: {r['refused']}")
    click.echo(machine_line(r["machine"]))
