"""Field punches from a phone, end to end in a real headless Chromium against a real hub on 127.0.0.1 (SQLite):
pairing by `kiosk hub field pair` and by HR's API makes a passkey in a CDP virtual authenticator (ctap2,
internal, resident key, user verification); the camera is fed a real face video (../shared/videos) turned into
a Y4M file at test time (tests/field_support.py); the location is emulated.

Which liveness mode each part exercises, honestly: a recorded video cannot follow the hub's random challenge,
so the punches of a genuine person run on a hub in blink mode (the person in the clip blinks; the hub judges the
page's clip with the kiosk's blink rule). The challenge mode runs with the refusals: a screen replay of an
enrolled person and a still photo of the owner are refused while the page shows the hub's challenge. (The
challenge itself, drawn by the hub and judged on a real person's turns, in order and out of order, is
tests/test_field_webauthn.py.)

Inside the fence the punch is stored (method field, the phone's own seq and chain, assertion kept); outside it
is flagged or refused by the employee's policy; another employee's phone (passkey) cannot punch for this one;
another person's face is refused; a spent link and a revoked phone are refused. Screenshots at 360x640 in zh
and en land in $KIOSK_FIELD_SCREENSHOTS (test-artifacts/field)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
from field_support import enrolment_photos, still_y4m, video_images, video_y4m
from sync_support import CONSENT, hub_config_data, start_hub
from ui_support import CHROMIUM, CHROMIUM_ARGS, require_chromium

from conftest import REPO
from sync.hub.config import validate_hub_config
from sync.hub.faces import EngineTemplateMaker

pytest_plugins = ["face_support", "sync_support"]

WAIT_MS = 60_000
SHOTS = Path(os.environ.get("KIOSK_FIELD_SCREENSHOTS", REPO / "test-artifacts" / "field"))
SITE = (31.2304, 121.4737)  # a client's office, radius 150 m
FAR = (31.2600, 121.5100)  # ~5 km away
# The owner (employee F1) is the man of the phone selfie: blinks at ~1.4, 2.7 and 3.4 s, so its first 4 s,
# looping as the fake camera does, show a blink within ~2 s wherever the page starts filming. F2 is another man
# (enrolled from his own clip). F3 is the man of the lestari pair: his genuine webcam clip to enrol, his
# video replayed on a phone held to the webcam as the spoof.
OWNER_CLIP = "blink_liveportrait_d13_phone_selfie.mp4"
OTHER_CLIP = "blink_liveportrait_d9_glasses.mp4"
REPLAYED_CLIP, REPLAY = "real_live_lestari_webcam.mp4", "spoof_screen_lestari_phone_replay.mp4"


def _field_hub(face_engine, tmp_path: Path, request: pytest.FixtureRequest, **field):  # noqa: ANN001, ANN003, ANN202
    require_chromium()
    data = hub_config_data("sqlite", tmp_path, request)
    data["field"] = {"attempts_per_minute": 60, **field}
    config = validate_hub_config(data, "test", tmp_path)
    hub = start_hub(config, maker=EngineTemplateMaker.from_engines([face_engine]))
    # The browser opens http://localhost:PORT (a passkey's relying party must be a host name, never an IP;
    # localhost is mapped to 127.0.0.1 in Chromium): the CLI's links use the same origin.
    port = hub.url.rsplit(":", 1)[1]
    hub.origin = f"http://localhost:{port}"
    hub.toml = tmp_path / "hub.toml"
    hub.toml.write_text(f'[database]\nsqlite_path = "{tmp_path / "hub.db"}"\n\n[field]\norigin = "{hub.origin}"\n')
    return hub


@pytest.fixture
def field_hub(face_engine, tmp_path: Path, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    hub = _field_hub(face_engine, tmp_path, request, liveness_mode="blink", challenge_timeout_s=6)
    yield hub
    hub.hr.close()
    hub.server.stop()


@pytest.fixture
def challenge_hub(face_engine, tmp_path: Path, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    hub = _field_hub(face_engine, tmp_path, request, challenge_timeout_s=4)
    yield hub
    hub.hr.close()
    hub.server.stop()


def _employee(hub, employee_id: str, name: str, photos: list[str]) -> None:  # noqa: ANN001
    resp = hub.hr.post("/v1/hr/employees", json={"employee_id": employee_id, "name": name, "branches": ["B001"],
                                                  "photos": photos, "consent": CONSENT})
    assert resp.status_code == 201, resp.text
    assert resp.json()["templates"], resp.text


def _phone(browser, geo: tuple[float, float], locale: str = "en-GB"):  # noqa: ANN001, ANN201
    """A phone: a fresh context at 360x640 with the location given and its own platform authenticator."""
    context = browser.new_context(viewport={"width": 360, "height": 640}, locale=locale,
                                  geolocation={"latitude": geo[0], "longitude": geo[1], "accuracy": 20},
                                  permissions=["geolocation", "camera"])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return page


def _pair(page, link: str) -> None:  # noqa: ANN001
    page.goto(link)
    page.locator("#pair:enabled").click()
    page.locator("#status[data-state=ok], #status[data-state=refused]").wait_for()
    assert page.locator("#status").get_attribute("data-state") == "ok", page.locator("#status").inner_text()


def _punch(page, direction: str, expect: str, shot: Path | None = None) -> str:  # noqa: ANN001
    """Press the button; ``shot``: a screenshot while the page shows the hub's challenge and films."""
    page.goto(page.url.split("#")[0].replace("/field/pair", "/field/"))
    page.locator("#position", has_text="±").wait_for()
    started = time.monotonic()
    page.locator(f"button.punch[data-direction={direction}]:enabled").click()
    if shot is not None:
        page.locator("#challenge:visible li.now").wait_for()
        page.screenshot(path=str(shot))
    page.locator(f"#status[data-state={expect}]").wait_for()
    print(f"field punch {direction} -> {expect}: {time.monotonic() - started:.2f} s from the press")  # noqa: T201
    return page.locator("#status").inner_text()


def _browser(playwright, camera: Path):  # noqa: ANN001, ANN202
    """Debian's Chromium with ``camera`` (a Y4M file) as every page's front camera."""
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}", "--host-resolver-rules=MAP localhost 127.0.0.1"]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


def _cli(invoke, hub, *args: str) -> str:  # noqa: ANN001
    result = invoke("hub", "field", *args, "--config", str(hub.toml))
    assert result.exit_code == 0, result.output
    return result.output


def test_field_punch_from_a_paired_phone(field_hub, video_data: Path, invoke, tmp_path: Path) -> None:  # noqa: ANN001
    hub = field_hub
    _employee(hub, "F1", "Li Na", enrolment_photos(video_data / OWNER_CLIP, [0.0, 5.0]))
    _employee(hub, "F2", "Zhang Wei", enrolment_photos(video_data / OTHER_CLIP, [0.3, 8.0]))
    assert hub.hr.put("/v1/hr/field/employees/F1/sites", json={"policy": "flag", "sites": [
        {"name": "Client A", "lat": SITE[0], "lon": SITE[1], "radius_m": 150}]}).status_code == 204
    camera = video_y4m(video_data / OWNER_CLIP, tmp_path / "owner.y4m", 0.0, 4.0)
    SHOTS.mkdir(parents=True, exist_ok=True)

    # Pairing: F1's link from the CLI, F2's from HR's API.
    link_f1 = _cli(invoke, hub, "pair", "F1", "--label", "test phone").strip().splitlines()[-1]
    assert link_f1.startswith(f"{hub.origin}/field/pair#")
    # HR's client reaches the hub by the name phones use (a link to an IP could not make a passkey).
    made = hub.hr.post("/v1/hr/field/pairings", json={"employee_id": "F2"},
                       headers={"Host": hub.origin.split("//", 1)[1]})
    assert made.status_code == 201, made.text
    link_f2 = made.json()["link"]

    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = _browser(playwright, camera)
        try:
            phone1 = _phone(browser, SITE)
            _pair(phone1, link_f1)
            phone1.screenshot(path=str(SHOTS / "pair-en.png"))

            # Inside the fence: accepted, no flags.
            text = _punch(phone1, "IN", "ok")
            assert "Clocked in" in text and "flagged" not in text
            phone1.screenshot(path=str(SHOTS / "punch-en.png"))

            # Outside, policy flag: stored, flagged outside_geofence.
            phone1.context.set_geolocation({"latitude": FAR[0], "longitude": FAR[1], "accuracy": 20})
            text = _punch(phone1, "OUT", "ok")
            assert "outside_geofence" in text

            # Outside, policy refuse (set by the CLI): refused, nothing stored.
            _cli(invoke, hub, "sites", "F1", "--policy", "refuse", "--site", f"Client A:{SITE[0]},{SITE[1]},150")
            text = _punch(phone1, "OUT", "refused")
            assert "outside every site" in text

            # The same page in Chinese.
            phone1.evaluate("localStorage.setItem('field.lang', 'zh')")
            phone1.context.set_geolocation({"latitude": SITE[0], "longitude": SITE[1], "accuracy": 20})
            text = _punch(phone1, "OUT", "ok")
            assert "下班打卡成功" in text
            phone1.screenshot(path=str(SHOTS / "punch-zh.png"))

            # The spent link: refused on another phone.
            spare = _phone(browser, SITE)
            spare.goto(link_f1)
            spare.locator("#status[data-state=refused]").wait_for()
            assert "already used" in spare.locator("#status").inner_text()
            assert spare.locator("#pair").is_disabled()

            # F2's phone: its own face check refuses the face of F1 in front of it (blinking: live, not F2)...
            phone2 = _phone(browser, SITE)
            _pair(phone2, link_f2)
            text = _punch(phone2, "IN", "refused")
            assert text.startswith("face not accepted: the face does not match this phone's owner"), text
            # ...and its passkey cannot confirm a punch prepared for F1's phone.
            f1_device = phone1.evaluate("localStorage.getItem('field.device')")
            refusal = phone2.evaluate("""async (device) => {
                const clip = await liveClip(device);
                const prepared = await prepare('IN', device, clip.clip_id);
                const signed = await sign(prepared, []);  // the phone's own (discoverable) passkey
                try { await call('POST', '/v1/field/punch/confirm', signed); return 'stored'; }
                catch (error) { return `${error.status} ${error.message}`; }
            }""", f1_device)
            assert refusal.startswith("401") and "not the one paired" in refusal
            # Claiming F1's credential id with F2's signature does not verify either.
            refusal = phone2.evaluate("""async ([device, credential]) => {
                const clip = await liveClip(device);
                const prepared = await prepare('IN', device, clip.clip_id);
                const signed = await sign(prepared, []);
                signed.credential_id = credential;
                try { await call('POST', '/v1/field/punch/confirm', signed); return 'stored'; }
                catch (error) { return `${error.status} ${error.message}`; }
            }""", [f1_device, phone1.evaluate("localStorage.getItem('field.credential')")])
            assert refusal.startswith("401") and "signature does not verify" in refusal

            # HR revokes F1's phone: it no longer punches.
            _cli(invoke, hub, "revoke", f1_device)
            phone1.evaluate("localStorage.setItem('field.lang', 'en')")
            phone1.goto(phone1.url)
            phone1.locator("#status[data-state=refused]").wait_for()
            assert "revoked" in phone1.locator("#status").inner_text()
        finally:
            browser.close()

    rows = [r for r in hub.export() if r["employee_id"] == "F1"]
    assert [(r["method"], r["direction"], r["seq"]) for r in rows] == [("field", "IN", 1), ("field", "OUT", 2),
                                                                       ("field", "OUT", 3)]
    assert [r["flags"] for r in rows] == ["", "outside_geofence", ""]
    assert {r["device_id"] for r in rows} == {f1_device}
    assert all("webauthn" in r["hub_flags"] and r["chain"] == "ok" and r["clock_state"] == "verified"
               and r["note"].startswith("phone_ts=") and r["score"] > 0 for r in rows), rows
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[2]["prev_hash"] == rows[1]["hash"]
    assert not [r for r in hub.export() if r["employee_id"] == "F2"]
    with hub.db.transaction(write=False) as tx:
        kept = tx.rows("SELECT punch_id, client_data_json FROM field_assertions ORDER BY punch_id")
    assert sorted(r["punch_id"] for r in kept) == sorted(r["id"] for r in rows)
    for row, punch in zip(sorted(kept, key=lambda r: r["punch_id"]), sorted(rows, key=lambda r: r["id"]),
                          strict=True):
        client = json.loads(base64.urlsafe_b64decode(row["client_data_json"] + "=="))
        assert base64.urlsafe_b64decode(client["challenge"] + "==").hex() == punch["hash"]


def test_field_challenge_refuses_a_screen_replay_and_a_still_photo(challenge_hub, video_data: Path,
                                                                   tmp_path: Path) -> None:
    """Challenge mode (the default): the page shows the hub's challenge; the lestari replay (his video on a phone
    held to the webcam: his face, matching his enrolment) and a still photo of him never do it."""
    hub = challenge_hub
    _employee(hub, "F3", "Chen Jie", enrolment_photos(video_data / REPLAYED_CLIP, [0.5, 2.0]))
    replay = video_y4m(video_data / REPLAY, tmp_path / "replay.y4m", 0.0, 2.5)
    _, still = next(video_images(video_data / REPLAYED_CLIP, 1.0, 1.0, 1.0))
    photo = still_y4m(still, tmp_path / "still.y4m")
    SHOTS.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        for camera, language, spoof in ((replay, "en", "replay"), (photo, "zh", "still")):
            made = hub.hr.post("/v1/hr/field/pairings", json={"employee_id": "F3"},
                               headers={"Host": hub.origin.split("//", 1)[1]})
            assert made.status_code == 201, made.text
            browser = _browser(playwright, camera)
            try:
                phone = _phone(browser, SITE)
                _pair(phone, made.json()["link"])
                phone.evaluate(f"localStorage.setItem('field.lang', '{language}')")
                text = _punch(phone, "IN", "refused", shot=SHOTS / f"challenge-{language}.png")
                shown = phone.locator("#challenge").get_attribute("data-steps").split(",")
                print(f"{spoof}: challenge {shown} -> {text}")  # noqa: T201
                assert len(shown) == 2 and set(shown) <= {"turn_left", "turn_right", "blink"}
                assert text.startswith("liveness not passed: "), text
            finally:
                browser.close()
    assert [r for r in hub.export() if r["employee_id"] == "F3"] == []
