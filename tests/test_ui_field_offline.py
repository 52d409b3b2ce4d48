"""Field punches without signal, the installable page and the fraud signals, for real: a headless Chromium phone
(virtual WebAuthn authenticator, emulated location, camera fed a real face video: the owner blinking, so the
hub's liveness check in blink mode passes online, test_ui_field.py's `field_hub`) against a real hub on
127.0.0.1 (SQLite). Offline the page films a clip in which the person blinks; the hub judges it whole on
arrival (blink mode, one face throughout, 1:1 with the owner).

Offline (Playwright's `context.set_offline`): the page opens from its service worker's cache, the punch is
signed by the passkey over the claim the page built and kept in IndexedDB; back online it is delivered once
(`clock_state = unverified`, its delay in the note); the same delivery again is answered `duplicate`; a punch
whose phone time is older than `field.offline_max_age_h` is refused with the hub's message. The PWA: the
manifest (name, start_url, display, icons that load) and a service worker controlling /field/. Fraud signals
come from real punches and reach the export's hub_flags and the console's punch list; `kiosk hub
verify-export` checks the field rows by their passkey assertions. Screenshots at 360x640 in
test-artifacts/field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console_support import add_user, signed_in
from field_support import enrolment_photos, video_y4m
from test_ui_field import (
    FAR,
    OWNER_CLIP,
    SHOTS,
    SITE,
    WAIT_MS,
    _cli,
    _employee,
    _pair,
    _phone,
    field_hub,
)
from test_ui_hub_console import sign_in
from ui_support import CHROMIUM, CHROMIUM_ARGS
from waiting import wait_for

from kiosk.base.record import HASHED_FIELDS, punch_hash
from kiosk.base.timeutil import iso_utc, parse_iso

pytest_plugins = ["face_support", "sync_support"]
__all__ = ["field_hub"]  # the fixture, shared with test_ui_field


# What the page needs to open with no signal: an active service worker controlling it, and the page and every
# script, style sheet, manifest and icon it loaded in that worker's cache.
OPENS_OFFLINE = """async () => {
    const registration = await navigator.serviceWorker.getRegistration();
    if (!registration || !registration.active || !navigator.serviceWorker.controller) return false;
    const files = [location.pathname, ...Array.from(document.querySelectorAll('script[src], link[href]'),
                                                    (e) => new URL(e.src || e.href).pathname)];
    return (await Promise.all(files.map((file) => caches.match(file)))).every(Boolean);
}"""


def _press(page, direction: str, expect: str) -> str:  # noqa: ANN001
    page.locator(f"button.punch[data-direction={direction}]:enabled").click()
    page.locator(f"#status[data-state={expect}]").wait_for()
    return page.locator("#status").inner_text()


def _move(page, lat: float, lon: float, accuracy: float = 20) -> None:  # noqa: ANN001
    page.context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": accuracy})
    page.locator("#position", has_text=f"{lat:.5f}, {lon:.5f} ±{accuracy:.0f} m").wait_for()


def test_offline_punch_pwa_and_fraud_signals(field_hub, video_data: Path, invoke, tmp_path: Path) -> None:  # noqa: ANN001
    hub = field_hub
    _employee(hub, "F1", "Li Na", enrolment_photos(video_data / OWNER_CLIP, [0.0, 5.0]))
    _cli(invoke, hub, "sites", "F1", "--policy", "flag", "--site", f"Client A:{SITE[0]},{SITE[1]},150")
    camera = video_y4m(video_data / OWNER_CLIP, tmp_path / "owner.y4m", 0.0, 4.0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    link = _cli(invoke, hub, "pair", "F1").strip().splitlines()[-1]

    from playwright.sync_api import sync_playwright
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}", "--host-resolver-rules=MAP localhost 127.0.0.1"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            phone = _phone(browser, SITE)
            _pair(phone, link)
            phone.goto(f"{hub.origin}/field/")
            phone.locator("button.punch[data-direction=IN]:enabled").wait_for()

            # The PWA: a manifest Chromium can install from, a service worker in control of /field/.
            manifest = phone.evaluate("""async () => {
                const link = document.querySelector('link[rel=manifest]');
                const data = await (await fetch(link.href)).json();
                const icons = await Promise.all(data.icons.map(async (i) => {
                    const r = await fetch(i.src); return [i.sizes, r.status, r.headers.get('content-type')]; }));
                return { ...data, icons };
            }""")
            assert (manifest["start_url"], manifest["scope"], manifest["display"]) == ("/field/", "/field/",
                                                                                       "standalone")
            assert manifest["icons"] == [["192x192", 200, "image/png"], ["512x512", 200, "image/png"]]
            phone.wait_for_function("navigator.serviceWorker.controller !== null")
            assert phone.evaluate("navigator.serviceWorker.controller.scriptURL") == f"{hub.origin}/field/sw.js"
            # Chromium's own installability check: nothing missing but a normal profile (Playwright's contexts
            # are off the record, where Chromium never offers to install).
            errors = phone.context.new_cdp_session(phone).send("Page.getInstallabilityErrors")
            assert [e["errorId"] for e in errors["installabilityErrors"]] == ["in-incognito"]

            # Online, at the site: clean.
            _move(phone, *SITE)
            assert "flagged" not in _press(phone, "IN", "ok")

            # No signal: the page still opens (from the service worker's cache), the punch is kept on the phone.
            wait_for(lambda: phone.evaluate(OPENS_OFFLINE), what="the page under its service worker, its files cached")
            phone.context.set_offline(True)
            phone.reload()
            phone.locator("#name", has_text="Li Na (F1)").wait_for()
            _move(phone, *SITE)
            text = _press(phone, "OUT", "queued")
            assert text == ("No signal: clock-out kept on this phone. It is sent when the phone is back online.")
            assert phone.locator("#queue").inner_text() == "1 punch waiting to be sent"
            phone.screenshot(path=str(SHOTS / "offline-en.png"))
            kept = phone.evaluate("queuedPunches()")
            assert len(kept) == 1 and json.loads(kept[0]["claim"])["direction"] == "OUT"
            assert not [r for r in hub.export() if r["direction"] == "OUT"]

            # Back online: delivered by itself, once; the same delivery again is a duplicate.
            phone.context.set_offline(False)
            phone.locator("#queue[data-count='0']").wait_for(state="attached")
            phone.locator("#status[data-state=ok]", has_text="Offline punch sent: clocked out").wait_for()
            again = phone.evaluate("""async (item) => {
                const { id, created, ...body } = item;
                const response = await fetch('/v1/field/punch/offline', { method: 'POST',
                    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
                return [response.status, (await response.json()).status];
            }""", kept[0])
            assert again == [200, "duplicate"]
            # The kept claim edited after it was signed, or sent with another frame: refused, nothing stored.
            send = """async ([item, claim, swap]) => {
                const { id, created, ...body } = item;
                body.claim = claim;
                const other = body.frames[1].jpeg_b64;
                if (swap) body.frames = body.frames.map((f, i) => (i ? f : { ...f, jpeg_b64: other }));
                const response = await fetch('/v1/field/punch/offline', { method: 'POST',
                    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
                return [response.status, (await response.json()).error.message];
            }"""
            claim = kept[0]["claim"]
            assert phone.evaluate(send, [kept[0], claim.replace('"OUT"', '"IN"'), False]) == [
                401, "the passkey signed another challenge"]
            assert phone.evaluate(send, [kept[0], claim, True]) == [
                422, "the offline punch's frames are not the ones its claim was signed with"]
            # Going offline does not skip liveness: a still (one frame of the clip, repeated), claimed and signed
            # as the page does, is refused when it arrives.
            still = phone.evaluate("""async (item) => {
                const frames = item.frames.map((f, i) => ({ t_ms: f.t_ms, jpeg_b64: item.frames[0].jpeg_b64 }));
                const digests = await Promise.all(frames.map(async (f) => [f.t_ms, await sha256hex(f.jpeg_b64)]));
                const claim = JSON.stringify({ ...JSON.parse(item.claim), id: crypto.randomUUID(),
                                               media: { frames: digests } });
                const challenge = b64url(await sha256(new TextEncoder().encode(claim)));
                const mine = fromB64url(localStorage.getItem('field.credential'));
                const signed = await sign({ challenge }, [{ type: 'public-key', id: mine }]);
                delete signed.challenge_id;
                try { await call('POST', '/v1/field/punch/offline', { claim, frames, ...signed }); return 'stored'; }
                catch (error) { return `${error.status} ${error.message}`; }
            }""", kept[0])
            assert still.startswith("403 not accepted: no blink was seen"), still

            # Fraud signals from real punches: ~5 km in seconds; a coarse fix; a mocked position.
            _move(phone, *FAR)
            assert "impossible_travel" in _press(phone, "IN", "ok")
            _move(phone, *SITE, accuracy=400)
            assert "accuracy_worse_than_radius" in _press(phone, "OUT", "ok")
            # A platform that tells the page the position is mocked (as an Android WebView wrapper may).
            phone.evaluate("Object.defineProperty(GeolocationCoordinates.prototype, 'mocked', "
                           "{ get: () => true, configurable: true })")
            _move(phone, SITE[0] + 0.0001, SITE[1])
            assert "mocked_location" in _press(phone, "IN", "ok")

            # Offline for longer than field.offline_max_age_h (72 h): refused with the hub's reason, not kept.
            phone.clock.set_fixed_time(datetime.now(UTC) - timedelta(hours=80))
            phone.context.set_offline(True)
            phone.evaluate("localStorage.setItem('field.lang', 'zh')")
            phone.reload()
            _move(phone, SITE[0] + 0.0002, SITE[1])
            assert _press(phone, "OUT", "queued").startswith("无网络：下班打卡已保存在手机上")
            phone.screenshot(path=str(SHOTS / "offline-zh.png"))
            phone.context.set_offline(False)
            phone.locator("#status[data-state=refused]").wait_for()
            refusal = phone.locator("#status").inner_text()
            assert refusal.startswith("一条离线打卡被拒绝：this offline punch was made 80.0 h ago"), refusal
            assert "up to 72 h old (field.offline_max_age_h)" in refusal
            phone.locator("#queue[data-count='0']").wait_for(state="attached")  # refused: not kept
        finally:
            browser.close()

    rows = [r for r in hub.export() if r["employee_id"] == "F1"]
    assert [(r["direction"], r["clock_state"]) for r in rows] == [
        ("IN", "verified"), ("OUT", "unverified"), ("IN", "verified"), ("OUT", "verified"), ("IN", "verified")]
    assert [r["hub_flags"] for r in rows] == [
        "webauthn", "webauthn,identical_fix", "webauthn,impossible_travel",
        "webauthn,accuracy_worse_than_radius,impossible_travel", "webauthn,mocked_location"]
    assert [r["flags"] for r in rows] == ["", "", "outside_geofence", "geofence_uncertain", ""]
    offline = rows[1]
    assert offline["id"] == json.loads(kept[0]["claim"])["id"]
    assert offline["ts_utc"] == iso_utc(parse_iso(json.loads(kept[0]["claim"])["phone_ts_utc"]))
    assert offline["note"].startswith("offline phone_ts=") and " delay_s=" in offline["note"]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5] and all(r["chain"] == "ok" for r in rows)

    # verify-export checks each field row by its passkey assertion (the offline one over its claim).
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in hub.export()), encoding="utf-8")
    result = invoke("hub", "verify-export", str(export), "--config", str(hub.toml), "--json")
    assert result.exit_code == 0, result.output
    assert "5 row(s): 5 verified (5 of them field punches, by their phone's passkey assertion)" in result.output

    # An online row's position edited and re-hashed, the offline row's direction edited and re-hashed: named.
    edited = hub.export()
    edited[0]["lat"] = FAR[0]
    edited[1]["direction"] = "IN"
    for row in edited[:2]:  # as the kiosk hashed it: a punch's author is "" (the export says null)
        row["hash"] = punch_hash({name: row[name] if row[name] is not None or name != "author" else ""
                                  for name in HASHED_FIELDS})
    export.write_text("".join(json.dumps(r) + "\n" for r in edited), encoding="utf-8")
    result = invoke("hub", "verify-export", str(export), "--config", str(hub.toml), "--json")
    assert result.exit_code == 1
    failed = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(f["row"], f["status"]) for f in failed] == [(1, "failed"), (2, "failed")]
    assert failed[0]["reason"].startswith(f"field phone {rows[0]['device_id']}'s passkey assertion does not hold: ")
    assert failed[1]["reason"] == "direction is not what the phone signed offline"


def test_console_pairs_sets_sites_shows_signals_and_revokes(field_hub, video_data: Path,  # noqa: ANN001
                                                            tmp_path: Path) -> None:
    hub = field_hub
    _employee(hub, "F1", "Li Na", enrolment_photos(video_data / OWNER_CLIP, [0.0, 5.0]))
    add_user(hub, "hr.admin", "hr_admin")
    add_user(hub, "mgr.b002", "branch_manager", ["B002"])
    camera = video_y4m(video_data / OWNER_CLIP, tmp_path / "owner.y4m", 0.0, 4.0)
    SHOTS.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}", "--host-resolver-rules=MAP localhost 127.0.0.1"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            console = browser.new_context(viewport={"width": 360, "height": 640}, locale="en-GB").new_page()
            console.set_default_timeout(WAIT_MS)
            console.on("dialog", lambda dialog: dialog.accept())
            sign_in(console, hub.origin, "hr.admin")

            # HR makes the pairing link on the Phones page: shown once, for the phone to open.
            console.goto(f"{hub.origin}/phones")
            assert console.locator("#phones").inner_text().endswith("No phone paired yet.")
            console.fill("#pair-form input[name=employee_id]", "F1")
            console.fill("#pair-form input[name=label]", "work phone")
            console.click("#pair")
            link = console.locator("#pair-link").inner_text()
            assert link.startswith(f"{hub.origin}/field/pair#")
            console.screenshot(path=str(SHOTS / "console-pair-en.png"))

            # ...and F1's sites with policy refuse, one site a line.
            console.fill("#sites input[name=employee]", "F1")
            console.click("#show-sites")
            assert console.locator("#sites-form select[name=policy]").input_value() == "flag"
            console.select_option("#sites-form select[name=policy]", "refuse")
            console.locator("#sites-form input[name=site]").first.fill(f"Client A:{SITE[0]},{SITE[1]},150")
            console.click("#save-sites")
            console.locator("p.note.ok", has_text="Sites saved.").wait_for()
            assert console.locator("#sites-form input[name=site]").first.input_value() == (
                f"Client A:{SITE[0]:g},{SITE[1]:g},150")
            assert console.locator("#sites-form select[name=policy]").input_value() == "refuse"

            phone = _phone(browser, FAR)
            _pair(phone, link)
            phone.goto(f"{hub.origin}/field/")
            _move(phone, *FAR)
            assert "outside every site" in _press(phone, "IN", "refused")
            _move(phone, *SITE)
            assert "flagged" not in _press(phone, "IN", "ok")
            assert "identical_fix" in _press(phone, "OUT", "ok")

            # The console's punch list shows the signal, and filters by it.
            console.goto(f"{hub.origin}/punches?flag=identical_fix")
            rows = console.locator("table.punches tbody tr.punch")
            rows.first.wait_for()
            assert rows.count() == 1
            assert rows.first.locator("span.signal").inner_text() == "identical position"

            # A manager of another branch sees no phone of F1's branch.
            manager = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB").new_page()
            manager.set_default_timeout(WAIT_MS)
            sign_in(manager, hub.origin, "mgr.b002")
            manager.goto(f"{hub.origin}/phones")
            assert manager.locator("#phones tbody").inner_text() == "No phone paired yet."
            assert manager.locator("#pair-form").count() == 0
            api = signed_in(hub, "mgr.b002")  # the HR API's twin runs the same checks
            assert api.get("/v1/hr/field/phones").json() == []
            refused = api.post("/v1/hr/field/pairings", json={"employee_id": "F1"})
            api.close()
            assert (refused.status_code, refused.json()["error"]["message"]) == (
                403, "role branch_manager may not do this (employees.write)")

            # Revoked from the console: the phone can no longer punch.
            console.goto(f"{hub.origin}/phones")
            device = phone.evaluate("localStorage.getItem('field.device')")
            row = console.locator(f"#phones tr[data-device='{device}']")
            assert row.locator("td").nth(2).inner_text() == "work phone"
            assert row.locator("td").nth(5).inner_text() == "2"
            row.locator("button.revoke").click()
            console.locator("p.note.ok", has_text="Phone revoked.").wait_for()
            assert "revoked" in console.locator(f"#phones tr[data-device='{device}']").get_attribute("class")
            console.screenshot(path=str(SHOTS / "console-phones-en.png"))
            console.goto(f"{hub.origin}/lang?to=zh&next=/phones%3Femployee%3DF1")
            console.locator("h1", has_text="外勤人员的手机").wait_for()
            console.screenshot(path=str(SHOTS / "console-phones-zh.png"))
            phone.reload()
            phone.locator("#status[data-state=refused]").wait_for()
            assert "revoked" in phone.locator("#status").inner_text()
        finally:
            browser.close()
