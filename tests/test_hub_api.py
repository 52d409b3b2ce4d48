"""The hub's v1 API over real HTTP, on SQLite and on PostgreSQL: devices, punches, roster, HR."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import numpy as np
import pytest
from sync_support import CONSENT, TEST_DIM, TEST_MODEL
from test_sync_protocol import chain

from kiosk.base.record import PUNCH_FIELDS, punch_hash
from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub import devices

OTHER_MODEL = "cd" * 32


def register(hub, branch: str = "B001", model_id: str | None = TEST_MODEL, **extra) -> httpx.Client:
    body = {"code": hub.code(branch), "device_name": f"kiosk-{branch}", "software_version": "0.1.0",
            "model_id": model_id, "template_dim": TEST_DIM if model_id else None, **extra}
    resp = httpx.post(f"{hub.url}/v1/device/register", json=body, timeout=30)
    assert resp.status_code == 201, resp.text
    answer = resp.json()
    client = httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {answer['token']}"}, timeout=30)
    client.device_id = answer["device_id"]
    return client


def upload(device: httpx.Client, records: list) -> dict:
    resp = device.post("/v1/device/punches", json={"punches": records})
    assert resp.status_code == 200, resp.text
    return resp.json()


def vector(seed: int, dim: int = TEST_DIM) -> list[float]:
    vec = np.random.default_rng(seed).normal(size=dim)
    return (vec / np.linalg.norm(vec)).tolist()


def small_jpeg_b64() -> str:
    """A real (tiny) JPEG file, base64: photos are checked from their header before any face model runs."""
    import base64
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 90, 60)).save(out, "JPEG")
    return base64.b64encode(out.getvalue()).decode()


def test_registration_code_works_once_and_expires(hub) -> None:
    code = hub.code("B001")
    body = {"code": code.lower().replace("-", " "), "device_name": "k", "software_version": "1"}
    first = httpx.post(f"{hub.url}/v1/device/register", json=body, timeout=30)
    assert first.status_code == 201 and first.json()["branch"] == "B001"
    again = httpx.post(f"{hub.url}/v1/device/register", json=body, timeout=30)
    assert again.status_code == 401 and again.json()["error"]["code"] == "unauthorized"
    expired = devices.create_code(hub.db, "B001", ttl_h=0.01)["code"]
    with hub.db.transaction() as tx:
        tx.run("UPDATE registration_codes SET expires_utc = ?", [iso_utc(utc_now() - timedelta(hours=1))])
    resp = httpx.post(f"{hub.url}/v1/device/register", json={**body, "code": expired}, timeout=30)
    assert resp.status_code == 401 and "expired" in resp.json()["error"]["message"]


def test_upload_is_idempotent_and_every_record_gets_its_own_verdict(hub) -> None:
    device = register(hub)
    records = chain(5)
    bad = {**chain(1)[0], "employee_id": "no spaces allowed"}
    first = upload(device, records[:3] + [bad])
    assert [r["status"] for r in first["results"]] == ["accepted"] * 3 + ["rejected"]
    assert "employee_id" in first["results"][3]["reason"]
    second = upload(device, records)
    assert [r["status"] for r in second["results"]] == ["duplicate"] * 3 + ["accepted"] * 2
    assert second["chain_seq"] == 5
    stored = hub.export()
    assert [p["seq"] for p in stored] == [1, 2, 3, 4, 5]
    assert all(p["chain"] == "ok" for p in stored)
    altered = {**records[0], "note": "changed"}
    third = upload(device, [altered])
    assert third["results"][0]["status"] == "rejected" and "hash" in third["results"][0]["reason"]
    with hub.db.transaction(write=False) as tx:
        assert tx.row("SELECT count(*) AS n FROM punch_rejects")["n"] == 2, "rejected records are kept"


def test_hub_records_gaps_late_punches_forks_and_chain_breaks(hub) -> None:
    device = register(hub)
    hub.hire("E1")
    records = chain(6)
    upload(device, records[:2] + records[4:])
    status = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()
    gaps = [i for i in status["issues"] if i["kind"] == "gap" and i["resolved_utc"] is None]
    assert [(g["seq_from"], g["seq_to"]) for g in gaps] == [(3, 4)]
    late = upload(device, [records[3]])
    assert late["results"][0]["reason"] == "chain: late"
    status = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()
    assert [(i["seq_from"], i["seq_to"]) for i in status["issues"] if i["kind"] == "gap" and not i["resolved_utc"]] \
        == [(3, 3)]
    upload(device, [records[2]])
    status = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()
    assert status["open_issues"] == 0 and status["punches"] == 6
    assert {p["seq"]: p["chain"] for p in hub.export()}[5] == "ok", "the record after the gap is linked now"

    clone = chain(1, start_seq=4, prev=records[2]["hash"])[0]
    fork = upload(device, [clone])
    assert fork["results"][0]["status"] == "accepted" and fork["results"][0]["reason"] == "chain: fork"
    broken = chain(1, start_seq=7, prev="e" * 64)[0]
    assert upload(device, [broken])["results"][0]["reason"] == "chain: break"
    kinds = sorted(i["kind"] for i in hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()["issues"]
                   if i["resolved_utc"] is None)
    assert kinds == ["chain_break", "fork"]
    assert len(hub.export()) == 8, "forked and broken punches are stored too: nothing is dropped"


def test_bad_requests_get_clear_4xx_bodies_and_no_stack_traces(hub) -> None:
    device = register(hub)
    json_headers = {"content-type": "application/json"}
    malformed = device.post("/v1/device/punches", content=b'{"punches": [', headers=json_headers)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    binary = hub.hr.post("/v1/hr/employees", content=b"\xff\xd8\xff\xe0 a JPEG, not JSON", headers=json_headers)
    assert binary.status_code == 400 and binary.json()["error"]["code"] == "malformed_json"
    assert binary.json()["error"]["fix"]
    big = device.post("/v1/device/punches", content=b" " * (5 * 2**20), headers=json_headers)
    assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"

    def chunks():
        for _ in range(5):
            yield b" " * 2**20

    chunked = device.post("/v1/device/punches", content=chunks(), headers=json_headers)
    assert chunked.status_code == 413, "a body without Content-Length is counted as it arrives"
    too_many = device.post("/v1/device/punches", json={"punches": [{"id": "x"}] * 1001})
    assert too_many.status_code == 413 and "at most 1000" in too_many.json()["error"]["message"]
    wrong_shape = device.post("/v1/device/punches", json={"punch": []})
    body = wrong_shape.json()["error"]
    assert wrong_shape.status_code == 422 and {tuple(d["loc"]) for d in body["details"]} >= {("body", "punches")}
    beat = device.post("/v1/device/heartbeat", json={"software_version": "1", "backlog": -5, "clock_state": "?"})
    assert beat.status_code == 422 and len(beat.json()["error"]["details"]) == 2
    for resp in (malformed, binary, big, too_many, wrong_shape, beat, device.get("/v1/nowhere")):
        assert "Traceback" not in resp.text and resp.headers["content-type"].startswith("application/json")
    assert device.get("/v1/nowhere").status_code == 404


def test_tokens_are_checked_per_role_and_revocation_is_immediate(hub) -> None:
    device = register(hub)
    assert httpx.get(f"{hub.url}/v1/device/roster", timeout=30).status_code == 401
    assert device.get("/v1/hr/devices").status_code == 401, "a device token is not an HR token"
    assert hub.hr.get("/v1/device/roster").status_code == 401, "an HR token is not a device token"
    assert device.get("/v1/device/roster").status_code == 200
    devices.revoke_device(hub.db, device.device_id)
    refused = device.post("/v1/device/punches", json={"punches": chain(1)})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    token = devices.create_api_token(hub.db, "hr")
    hr2 = httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token['token']}"}, timeout=30)
    assert hr2.get("/v1/hr/devices").status_code == 200
    devices.revoke_api_token(hub.db, token["id"])
    assert hr2.get("/v1/hr/devices").status_code == 401
    with hub.db.transaction(write=False) as tx:
        hashes = [r["token_hash"] for r in tx.rows("SELECT token_hash FROM api_tokens")]
    assert token["token"] not in hashes and devices.token_hash(token["token"]) in hashes


def test_hr_reads_punches_by_cursor_as_json_lines_or_csv(hub) -> None:
    device = register(hub)
    upload(device, chain(7))
    first = hub.hr.get("/v1/hr/punches", params={"limit": 4})
    assert first.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in first.text.splitlines()]
    assert len(lines) == 4 and first.headers["X-More"] == "true"
    rest = hub.hr.get("/v1/hr/punches", params={"since": first.headers["X-Next-Cursor"]})
    assert [json.loads(line)["seq"] for line in rest.text.splitlines()] == [5, 6, 7]
    csv_resp = hub.hr.get("/v1/hr/punches", headers={"Accept": "text/csv"})
    rows = csv_resp.text.splitlines()
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert rows[0].startswith("cursor,id,device_id,branch,seq,employee_id") and len(rows) == 8
    assert hub.hr.get("/v1/hr/punches", params={"branch": "B999"}).text == ""


def test_roster_follows_branch_and_model_and_carries_leavers(hub) -> None:
    b1 = register(hub, "B001")
    b1_other_model = register(hub, "B001", model_id=OTHER_MODEL)
    b2 = register(hub, "B002")
    emp = {"employee_id": "E100", "name": "Li Na", "branches": ["B001"], "cards": ["00ab12cd"], "consent": CONSENT,
           "templates": [{"model_id": TEST_MODEL, "vector": vector(1)}, {"model_id": OTHER_MODEL, "vector": vector(2)}]}
    created = hub.hr.post("/v1/hr/employees", json=emp)
    assert created.status_code == 201, created.text
    assert created.json()["templates"] == {TEST_MODEL: 1, OTHER_MODEL: 1}
    page = b1.get("/v1/device/roster").json()
    assert [e["employee_id"] for e in page["employees"]] == ["E100"]
    assert page["employees"][0]["cards"] == ["00AB12CD"]
    assert [t["model_id"] for t in page["employees"][0]["templates"]] == [TEST_MODEL]
    other = b1_other_model.get("/v1/device/roster").json()["employees"][0]["templates"]
    assert [t["model_id"] for t in other] == [OTHER_MODEL]
    assert b2.get("/v1/device/roster").json()["employees"] == [], "another branch never sees them"

    moved = hub.hr.patch("/v1/hr/employees/E100", json={"branches": ["B002"]})
    assert moved.status_code == 200 and moved.json()["branches"] == ["B002"]
    b1_next = b1.get("/v1/device/roster", params={"cursor": page["cursor"]}).json()
    assert b1_next["deletions"] == ["E100"] and b1_next["employees"] == []
    b2_page = b2.get("/v1/device/roster").json()
    assert [e["employee_id"] for e in b2_page["employees"]] == ["E100"]
    gone = hub.hr.post("/v1/hr/employees/E100/terminate", json={"reason": "left"})
    assert gone.status_code == 200 and gone.json()["active"] is False and gone.json()["cards"] == []
    assert b2.get("/v1/device/roster", params={"cursor": b2_page["cursor"]}).json()["deletions"] == ["E100"]
    rehired = hub.hr.post("/v1/hr/employees", json={**emp, "templates": []})
    assert rehired.status_code == 201 and rehired.json()["active"] is True


def test_hr_input_is_validated_with_reasons(hub) -> None:
    register(hub)
    base = {"employee_id": "E1", "name": "A", "branches": ["B001"]}
    unknown = hub.hr.post("/v1/hr/employees", json={**base, "templates": [{"model_id": "ef" * 32,
                                                                          "vector": vector(3)}]})
    assert unknown.status_code == 422 and "unknown model id" in unknown.json()["error"]["message"]
    short = hub.hr.post("/v1/hr/employees", json={**base, "templates": [{"model_id": TEST_MODEL,
                                                                        "vector": vector(3, 128)}]})
    assert short.status_code == 422 and "512" in short.json()["error"]["message"]
    assert hub.hr.post("/v1/hr/employees", json={**base, "cards": ["1234abcd"]}).status_code == 201
    assert hub.hr.post("/v1/hr/employees", json=base).status_code == 409
    taken = hub.hr.post("/v1/hr/employees", json={**base, "employee_id": "E2", "cards": ["1234ABCD"]})
    assert taken.status_code == 409 and "E1" in taken.json()["error"]["message"]
    not_a_photo = "bm90IGEgcGhvdG8gYXQgYWxs"
    bad_photo = hub.hr.post("/v1/hr/employees", json={**base, "employee_id": "E3", "photos": [not_a_photo]})
    assert bad_photo.status_code == 422 and "JPEG" in bad_photo.json()["error"]["message"]
    jpeg = small_jpeg_b64()
    no_engine = hub.hr.post("/v1/hr/employees", json={**base, "employee_id": "E4", "photos": [jpeg]})
    assert no_engine.status_code == 201
    assert no_engine.json()["photos_rejected"][0]["reason"].startswith("the hub has no face model")
    assert hub.hr.patch("/v1/hr/employees/NOPE", json={"name": "x"}).status_code == 404
    assert hub.hr.get("/v1/hr/employees/E1").json()["cards"] == ["1234ABCD"]


def test_heartbeat_reaches_device_status_and_openapi_is_published(hub) -> None:
    device = register(hub)
    beat = {"software_version": "0.2.0", "model_id": OTHER_MODEL, "template_dim": 512, "backlog": 17,
            "last_punch_seq": 40, "clock_offset_s": -0.25, "clock_state": "unverified", "disk_free_bytes": 10**9}
    resp = device.post("/v1/device/heartbeat", json=beat)
    assert resp.status_code == 200 and resp.json()["max_batch"] == 1000
    status = hub.hr.get("/v1/hr/devices").json()[0]
    assert status["software_version"] == "0.2.0" and status["model_id"] == OTHER_MODEL
    assert status["heartbeat"]["backlog"] == 17 and status["heartbeat"]["clock_offset_s"] == -0.25
    assert resp.headers["x-hub-time"].endswith("Z") and "date" in resp.headers
    spec = httpx.get(f"{hub.url}/v1/openapi.json", timeout=30).json()
    assert spec["info"]["title"] == "Branch kiosk hub"
    for path in ("/v1/device/register", "/v1/device/punches", "/v1/device/roster", "/v1/device/heartbeat",
                 "/v1/hr/employees", "/v1/hr/punches", "/v1/hr/devices"):
        assert path in spec["paths"]
    # A batch's punches are documented field by field: every field of the punch record, in its order, then
    # the device's signature of its hash.
    punch = spec["components"]["schemas"]["PunchBatch"]["properties"]["punches"]["items"]
    assert tuple(punch["properties"]) == (*PUNCH_FIELDS, "signature")
    assert punch["required"] == ["id", "seq", "employee_id", "method", "ts_utc", "mono_ns", "boot_id", "clock_state",
                                 "prev_hash", "hash"]


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_health_needs_no_token(hub) -> None:
    resp = httpx.get(f"{hub.url}/v1/health", timeout=30)
    assert resp.status_code == 200 and resp.json()["database"] == "sqlite"


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_an_internal_failure_answers_500_with_an_incident_id_not_a_traceback(hub) -> None:
    device = register(hub)
    with hub.db.transaction() as tx:
        tx.run("DROP TABLE device_issues")  # a broken database the code did not expect
    resp = device.get(f"/v1/hr/devices/{device.device_id}", headers=hub.hr.headers)
    body = resp.json()["error"]
    assert resp.status_code == 500 and body["code"] == "internal" and "incident" in body["message"]
    assert "Traceback" not in resp.text and "device_issues" not in resp.text


def test_punches_dated_ahead_of_the_hub_are_flagged_and_raised(hub) -> None:
    """The reported gap: a kiosk clock set 400 days ahead gave punches dated then, accepted with no flag and
    no device issue. They are still stored (nothing is dropped), flagged clock_ahead, and HR sees an issue."""
    device = register(hub)
    hub.hire("E1")
    ahead = iso_utc(utc_now() + timedelta(days=400))
    records = chain(1, mono_ns=1_000)
    records += chain(1, start_seq=2, prev=records[-1]["hash"], ts_utc=ahead, clock_state="unverified",
                     mono_ns=2_000)
    records += chain(1, start_seq=3, prev=records[-1]["hash"], ts_utc=iso_utc(utc_now() + timedelta(minutes=2)),
                     mono_ns=3_000)  # within the allowed skew
    assert upload(device, records)["accepted"] == 3
    flags = {row["seq"]: row["hub_flags"] for row in hub.export()}
    # This device registered no signing key (as kiosks before keys): its punches are also flagged unsigned.
    assert flags == {1: "unsigned", 2: "clock_ahead,unsigned", 3: "unsigned"}
    issues = [i for i in hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()["issues"]
              if i["kind"] == "clock_ahead"]
    assert [(i["seq_from"], i["seq_to"], i["resolved_utc"]) for i in issues] == [(2, 2, None)]
    assert "clock is ahead" in issues[0]["detail"]
    picked = hub.hr.get("/v1/hr/punches", params={"flag": "clock_ahead"})
    assert [json.loads(line)["seq"] for line in picked.text.splitlines()] == [2]


# -- ingest: every verdict, counter and issue text ------------------------------------------------------
CHAIN_ISSUES = {"gap", "fork", "chain_break", "id_conflict"}


def open_issue_details(hub, device) -> list[tuple[str, int, int, str]]:
    """The device's open issues about its chain and ids (the test employees are not on the hub: those issues
    are left out)."""
    issues = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()["issues"]
    return sorted((i["kind"], i["seq_from"], i["seq_to"], i["detail"]) for i in issues
                  if i["resolved_utc"] is None and i["kind"] in CHAIN_ISSUES)


def test_repeats_and_conflicts_get_exact_verdicts_and_counts(hub) -> None:
    device = register(hub)
    records = chain(3)
    first = upload(device, [records[0], records[0]])  # the same record twice in one batch
    assert [(r["seq"], r["status"]) for r in first["results"]] == [(1, "accepted"), (1, "duplicate")]
    rewritten = {**records[1], "employee_id": "E2"}
    rewritten["hash"] = punch_hash({k: v for k, v in rewritten.items() if k != "hash"})
    answer = upload(device, [records[0], records[1], rewritten, records[2]])
    assert [(r["id"], r["seq"], r["status"], r["reason"]) for r in answer["results"]] == [
        (records[0]["id"], 1, "duplicate", ""), (records[1]["id"], 2, "accepted", ""),
        (records[1]["id"], 2, "rejected", "this punch id is already stored with different content"),
        (records[2]["id"], 3, "accepted", "")]
    assert (answer["accepted"], answer["duplicates"], answer["rejected"], answer["chain_seq"]) == (2, 1, 1, 3)
    status = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()
    assert (status["punches"], status["duplicates"], status["rejected"]) == (3, 2, 1)
    with hub.db.transaction(write=False) as tx:
        (kept,) = tx.rows("SELECT punch_id, seq, body FROM punch_rejects")
    assert (kept["punch_id"], kept["seq"]) == (records[1]["id"], 2)
    assert json.loads(kept["body"])["employee_id"] == "E2"  # the refused content, as sent
    assert open_issue_details(hub, device) == [
        ("id_conflict", 2, 2, f"punch {records[1]['id']}: this punch id is already stored with different content")]
    assert upload(device, records)["duplicates"] == 3  # every repeat in a batch is counted


def test_late_punches_split_gaps_and_name_the_links_that_fail(hub) -> None:
    device = register(hub)
    records = chain(8)
    upload(device, [records[0], records[1], records[6], records[7]])
    assert open_issue_details(hub, device) == [("gap", 3, 6, "4 punch(es) not received")]
    # Two late punches in one batch: the second falls in what is left of the gap after the first.
    answer = upload(device, [records[3], records[4]])
    assert [r["reason"] for r in answer["results"]] == ["chain: late", "chain: late"]
    assert open_issue_details(hub, device) == [("gap", 3, 3, "1 punch(es) not received"),
                                               ("gap", 6, 6, "1 punch(es) not received")]
    # A stranger's seq 3 that links to seq 2 but not to the stored seq 4, and a clone of seq 1 in the same batch.
    forged = chain(1, start_seq=3, prev=records[1]["hash"], employee_id="E9")[0]
    clone = chain(1, start_seq=1, employee_id="E8")[0]
    answer = upload(device, [clone, forged])
    assert [r["reason"] for r in answer["results"]] == ["chain: fork", "chain: late"]
    assert open_issue_details(hub, device) == [
        ("chain_break", 4, 4, "seq 4 does not link to the late punch seq 3"),
        ("fork", 1, 1, f"a second, different punch {clone['id']} has seq 1: the kiosk's store was restored or cloned"),
        ("gap", 6, 6, "1 punch(es) not received")]
    # A late seq 6 that links to neither neighbour.
    stranger = chain(1, start_seq=6, prev="d" * 64)[0]
    assert upload(device, [stranger])["results"][0]["reason"] == "chain: break"
    assert ("chain_break", 6, 6, "late punch seq 6 does not link to seq 5") in open_issue_details(hub, device)
    assert ("chain_break", 7, 7, "seq 7 does not link to the late punch seq 6") in open_issue_details(hub, device)


def test_direction_kind_and_author_are_stored_as_sent_or_null(hub) -> None:
    device = register(hub)
    plain = chain(1)[0]  # as an older kiosk sends it: no direction, kind or author
    correction = chain(1, start_seq=2, prev=plain["hash"], direction="IN", kind="correction", author="admin")[0]
    upload(device, [plain, correction])
    with hub.db.transaction(write=False) as tx:
        rows = tx.rows("SELECT seq, direction, kind, author FROM punches ORDER BY seq")
    assert rows == [{"seq": 1, "direction": None, "kind": "punch", "author": None},
                    {"seq": 2, "direction": "IN", "kind": "correction", "author": "admin"}]
