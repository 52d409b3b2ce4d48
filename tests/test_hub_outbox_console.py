"""The outbound queue and webhooks in HR's console and their HR API twins (the same queue functions as
`kiosk hub outbox|webhook`): roles, a parked record seen, retried after the receiver is fixed, and delivered,
in a real headless Chromium against the real hub with its own delivery worker and a receiver on 127.0.0.1.
Screenshots (zh/en, 1280x800) land in $KIOSK_CONSOLE_SCREENSHOTS (default: test-artifacts/console)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from console_support import PASSWORD, FakeKiosk, add_user, signed_in
from outbound_support import Receiver
from sync_support import hub_config_data, start_hub
from ui_support import chromium, require_chromium
from waiting import wait_for

from conftest import REPO
from sync.hub.config import validate_hub_config
from sync.hub.outbound import events, queue

SHOTS = Path(os.environ.get("KIOSK_CONSOLE_SCREENSHOTS", REPO / "test-artifacts" / "console"))
WAIT_MS = 60_000


@pytest.fixture
def receiver():
    rec = Receiver([]).start()
    yield rec
    rec.stop()


@pytest.fixture
def working_hub(hub_backend, tmp_path, request):
    """A real hub whose own delivery worker runs, parking a record after two quick failures."""
    data = hub_config_data(hub_backend, tmp_path, request)
    data["outbound"] = {"max_attempts": 2, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, "poll_interval_s": 0.05,
                        "timeout_s": 5.0, "lease_s": 10.0}
    hub = start_hub(validate_hub_config(data, "test", tmp_path))
    yield hub
    hub.hr.close()
    hub.server.stop()


def test_outbox_and_webhooks_through_the_hr_api(working_hub, receiver) -> None:
    hub = working_hub
    added = hub.hr.post("/v1/hr/webhooks", json={"url": receiver.url, "event_types": [events.PUNCH_CREATED],
                                                 "description": "payroll"})
    assert added.status_code == 201, added.text
    sub_id, receiver.secrets = added.json()["id"], [added.json()["secret"]]
    listed = hub.hr.get("/v1/hr/webhooks").json()
    assert [(s["id"], s["live_secrets"]) for s in listed] == [(sub_id, 1)]
    assert "secret" not in listed[0] and "secrets" not in listed[0]
    tested = hub.hr.post(f"/v1/hr/webhooks/{sub_id}/test").json()
    assert tested["accepted"] is True and receiver.accepted[-1]["type"] == events.TEST_EVENT
    receiver.answer = lambda event: (500, 0.0)
    punch = FakeKiosk(hub).punch("E1")
    wait_for(lambda: queue.list_deliveries(hub.db, "parked"), what="the record parked after two failures")
    [row] = hub.hr.get("/v1/hr/outbox", params={"status": "parked", "subscription": sub_id}).json()
    assert row["event_id"] == punch["id"] and row["attempts"] == 2 and row["last_error"].startswith("HTTP 500")
    receiver.answer = None
    assert hub.hr.post("/v1/hr/outbox/retry", json={"ids": [row["id"]]}).json() == {"changed": 1}
    wait_for(lambda: queue.list_deliveries(hub.db, "delivered"), what="the retried record delivered")
    assert receiver.accepted[-1]["id"] == punch["id"]
    assert hub.hr.post("/v1/hr/outbox/skip", json={"ids": [row["id"]]}).json() == {"changed": 0}, \
        "a delivered record cannot be skipped"
    bad = hub.hr.get("/v1/hr/outbox", params={"status": "lost"})
    assert bad.status_code == 422
    nothing = hub.hr.post("/v1/hr/outbox/retry", json={})
    assert nothing.status_code == 422 and "--all-parked" in nothing.json()["error"]["fix"]
    wrong = hub.hr.post("/v1/hr/webhooks", json={"url": receiver.url, "event_types": ["attendance.nope"]})
    assert wrong.status_code == 422 and "attendance.punch.created" in wrong.json()["error"]["fix"]
    add_user(hub, "mgr", "branch_manager", ["B001"])
    add_user(hub, "ops", "ops")
    manager, ops = signed_in(hub, "mgr"), signed_in(hub, "ops")
    try:
        assert manager.get("/v1/hr/outbox").status_code == 403
        assert manager.post("/v1/hr/webhooks", json={"url": receiver.url}).status_code == 403
        assert ops.get("/v1/hr/webhooks").status_code == 200
        assert ops.delete(f"/v1/hr/webhooks/{sub_id}").json() == {"skipped": 0}
        assert ops.delete(f"/v1/hr/webhooks/{sub_id}").status_code == 404
    finally:
        manager.close()
        ops.close()
    paths = hub.hr.get("/v1/openapi.json").json()["paths"]
    assert {"/v1/hr/outbox", "/v1/hr/outbox/retry", "/v1/hr/outbox/skip", "/v1/hr/webhooks",
            "/v1/hr/webhooks/{subscription_id}", "/v1/hr/webhooks/{subscription_id}/test"} <= set(paths)


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_a_parked_record_is_seen_retried_and_delivered_in_the_console(working_hub, receiver) -> None:
    require_chromium()
    hub = working_hub
    add_user(hub, "ops.on.call", "ops")
    kiosk = FakeKiosk(hub)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB").new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{hub.url}/outbox")
        page.wait_for_url(re.compile(r"/signin\?next="))
        page.fill("input[name=username]", "ops.on.call")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{hub.url}/outbox")

        page.fill("#webhook-form input[name=url]", receiver.url)
        page.fill("#webhook-form input[name=description]", "payroll system")
        page.check(f"#webhook-form input[value='{events.PUNCH_CREATED}']")
        page.click("#webhook-form button[type=submit]")
        receiver.secrets = [page.inner_text("#new-secret").strip()]
        [sub_id] = queue.subscriptions(hub.db)
        assert queue.subscriptions(hub.db)[sub_id].event_types == [events.PUNCH_CREATED]

        receiver.answer = lambda event: (500, 0.0)  # the receiver is broken
        page.click(f"#subscriptions tr[data-subscription='{sub_id}'] button.test")
        assert page.get_attribute("#webhook-tested", "data-accepted") == "no"
        assert "HTTP 500" in page.inner_text("#webhook-tested")
        punch = kiosk.punch("E1")
        wait_for(lambda: queue.list_deliveries(hub.db, "parked"), what="the record parked after two failures")
        page.goto(f"{hub.url}/outbox")
        record = page.locator(f"tr.record[data-event='{punch['id']}']")
        assert record.get_attribute("data-status") == "parked"
        assert "HTTP 500" in record.locator(".error").inner_text() and "Parked" in record.inner_text()
        assert page.inner_text(f"#subscriptions tr[data-subscription='{sub_id}'] td.parked") == "1"
        for lang in ("zh", "en"):
            page.goto(f"{hub.url}/lang?to={lang}&next=/outbox")
            page.screenshot(path=str(SHOTS / f"outbox-parked-{lang}-1280x800.png"), full_page=True)
            assert ("推送到人事系统" in page.inner_text("h1")) == (lang == "zh")

        receiver.answer = None  # fixed
        record = page.locator(f"tr.record[data-event='{punch['id']}']")
        record.locator("input[name=ids]").check()
        page.click(f"section.records[data-subscription='{sub_id}'] button.retry")
        page.wait_for_url(f"{hub.url}/outbox?done=retried")
        wait_for(lambda: [e for e in receiver.accepted if e["id"] == punch["id"]], what="the retried punch delivered")
        # The worker marks the record delivered after the receiver's answer: wait for that, not the POST.
        wait_for(lambda: [d for d in queue.list_deliveries(hub.db, "delivered") if d["event_id"] == punch["id"]],
                 what="the retried record marked delivered")
        page.reload()
        assert page.locator("tr.record").count() == 0, "nothing waits or is parked any more"
        assert page.inner_text(f"#subscriptions tr[data-subscription='{sub_id}'] td.parked") == "0"
        assert page.inner_text(f"#subscriptions tr[data-subscription='{sub_id}'] td.pending ~ td.parked ~ td") == "1"
        for lang in ("zh", "en"):
            page.goto(f"{hub.url}/lang?to={lang}&next=/outbox")
            page.screenshot(path=str(SHOTS / f"outbox-delivered-{lang}-1280x800.png"), full_page=True)

        page.click(f"#subscriptions tr[data-subscription='{sub_id}'] button.remove")
        page.wait_for_url(f"{hub.url}/outbox?done=removed")
        assert page.locator(f"#subscriptions tr[data-subscription='{sub_id}']").count() == 0
    kiosk.close()
