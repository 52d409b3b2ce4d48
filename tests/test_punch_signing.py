"""Device-signed punches: each kiosk signs its punches' hashes with its own Ed25519 key (inside the encrypted
store), the hub refuses unsigned or forged records of a device that registered a key (per record), HR's
exports carry the signatures, and `kiosk hub verify-export` names any row edited after the hub."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest

from kiosk.base.record import punch_hash
from kiosk.base.signing import new_private_key, public_key, sign_hash, signature_valid
from kiosk.config import load_config
from kiosk.store import open_store
from sync.hub import devices


def _hub_toml(hub, tmp_path: Path) -> Path:
    """A hub.toml for the running hub's database (for the `kiosk hub` commands)."""
    db = hub.server.config.database
    path = tmp_path / "hub.toml"
    if db.backend == "sqlite":
        path.write_text(f'[database]\nbackend = "sqlite"\nsqlite_path = "{db.sqlite_path}"\n')
    else:
        path.write_text(f'[database]\nbackend = "postgres"\npostgres_dsn = "{db.postgres_dsn}"\n'
                        f'postgres_schema = "{db.postgres_schema}"\n')
    return path


def _device_client(hub, kiosk) -> httpx.Client:
    token = kiosk.agent.state.require_registration().token
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_kiosk_init_makes_a_key_inside_the_store_and_an_older_store_gets_one(kiosk_home: Path) -> None:
    config = load_config(kiosk_home)
    store = open_store(config)
    try:
        first = store.signing.current()
        assert len(first.public_key) == 64 and first.key_id
        # A store made before keys existed: its next open creates one (a named migration).
        with store.atomic():
            store.db.execute("DROP TABLE signing_keys")
            store.db.execute("DELETE FROM _migrations WHERE name = 'signing_keys'")
    finally:
        store.close()
    assert b"signing_keys" not in (config.store.path.read_bytes())  # the store file is encrypted
    store = open_store(config)
    try:
        again = store.signing.current()
        assert again.public_key != first.public_key and [k.key_id for k in store.signing.history()] == [again.key_id]
    finally:
        store.close()


def test_signed_punches_reach_the_hub_and_hr_export_with_their_signature(hub, make_kiosk) -> None:
    kiosk = make_kiosk(hub=hub)
    key = kiosk.store.signing.current()
    kiosk.punch("E1", 3)
    assert kiosk.agent.push().accepted == 3
    rows = hub.export()
    device_id = kiosk.agent.state.require_registration().device_id
    assert devices.device_keys(hub.db)["devices"][device_id]["keys"] == {key.key_id: key.public_key}
    for row in rows:
        assert row["device_id"] == device_id and row["key_id"] == key.key_id and "unsigned" not in row["hub_flags"]
        assert signature_valid(key.public_key, row["hash"], row["signature"])


def test_forged_and_unsigned_records_are_refused_one_by_one_and_the_rest_is_stored(hub, make_kiosk) -> None:
    kiosk = make_kiosk(hub=hub)
    kiosk.punch("E1", 5)
    batch = kiosk.agent.state.pending(10)
    other_key = new_private_key()
    forged = batch[1]["signature"][:-2] + ("00" if not batch[1]["signature"].endswith("00") else "11")
    batch[1] = {**batch[1], "signature": forged}                           # a signature altered on the way
    batch[2] = {**batch[2], "signature": ""}                               # no signature at all
    batch[3] = {**batch[3], "signature": sign_hash(other_key, batch[3]["hash"])}  # signed by another key
    with _device_client(hub, kiosk) as device:
        resp = device.post("/v1/device/punches", json={"punches": batch})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "rejected", "rejected", "accepted"]
    assert "signature does not verify" in answer["results"][1]["reason"]
    assert answer["results"][2]["reason"].startswith("unsigned")
    assert "signature does not verify" in answer["results"][3]["reason"]
    assert [row["seq"] for row in hub.export()] == [1, 5]
    status = hub.hr.get(f"/v1/hr/devices/{kiosk.agent.state.require_registration().device_id}").json()
    assert status["rejected"] == 3


def test_a_device_registered_before_keys_is_heard_but_flagged_unsigned(hub, make_kiosk) -> None:
    kiosk = make_kiosk()
    hub.hire("E1")  # on the branch's roster: the only flag is the one this test is about
    kiosk.punch("E1", 2)
    body = {"code": hub.code("B001"), "device_name": "old", "software_version": "0.1.0"}  # no public_key
    answer = httpx.post(f"{hub.url}/v1/device/register", json=body, timeout=30).json()
    records = [{k: v for k, v in rec.items() if k != "signature"} for rec in kiosk.store.signing.sign_records(
        [dict(r) for r in kiosk.agent.state.pending(10)])]
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {answer['token']}"}, timeout=30) as device:
        resp = device.post("/v1/device/punches", json={"punches": records})
    assert resp.json()["accepted"] == 2
    assert [row["hub_flags"] for row in hub.export()] == ["unsigned", "unsigned"]
    assert all(row["signature"] == "" and row["key_id"] == "" for row in hub.export())


def test_registering_again_rotates_the_key_and_old_punches_keep_verifying(hub, make_kiosk, invoke,
                                                                         tmp_path: Path) -> None:
    kiosk = make_kiosk(hub=hub)
    old = kiosk.store.signing.current()
    kiosk.punch("E1", 2)
    kiosk.agent.push()
    kiosk.agent.register(hub.url, hub.code("B001"))
    new = kiosk.store.signing.current()
    assert new.key_id != old.key_id
    history = kiosk.store.signing.history()
    assert [k.key_id for k in history] == [old.key_id, new.key_id] and history[0].retired_utc is not None
    kiosk.punch("E1", 2)
    assert kiosk.agent.push().accepted == 2
    rows = hub.export()
    assert [r["key_id"] for r in rows] == [old.key_id] * 2 + [new.key_id] * 2
    exported = tmp_path / "feed.jsonl"
    exported.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("hub", "verify-export", str(exported), "--config", str(_hub_toml(hub, tmp_path)))
    assert result.exit_code == 0, result.output
    assert "4 row(s): 4 verified, 0 unsigned, 0 failed" in result.output


def _payroll(hub, fmt: str) -> bytes:
    resp = hub.hr.get("/v1/hr/export", params={"format": fmt})
    assert resp.status_code == 200, resp.text
    return resp.content


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_verify_export_names_each_edited_row_of_a_payroll_file(hub, make_kiosk, invoke, tmp_path: Path) -> None:
    kiosk = make_kiosk(hub=hub)
    kiosk.punch("E1", 3)
    kiosk.store.roster.add("E2", "Li Na")
    with kiosk.store.atomic():
        from kiosk.store.punches import PunchDraft
        kiosk.store.punches.append(PunchDraft("E2", "manual", "verified", note="=HYPERLINK(\"x\")", lon=-73.5))
    kiosk.agent.push()
    keys = tmp_path / "keys.json"
    made = invoke("hub", "device", "keys", "--out", str(keys), "--config", str(_hub_toml(hub, tmp_path)))
    assert made.exit_code == 0, made.output

    payroll = tmp_path / "payroll.csv"
    payroll.write_bytes(_payroll(hub, "csv"))
    clean = invoke("hub", "verify-export", str(payroll), "--keys", str(keys))
    assert clean.exit_code == 0 and "4 row(s): 4 verified" in clean.output, clean.output

    rows = list(csv.DictReader(io.StringIO(payroll.read_text(encoding="utf-8-sig"))))
    rows[1]["employee_id"] = "E2"                 # a punch moved to someone else
    rows[2]["local_time"] = "08:00:00"            # the time payroll reads, moved
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    payroll.write_text(out.getvalue(), encoding="utf-8")
    edited = invoke("hub", "verify-export", str(payroll), "--keys", str(keys))
    assert edited.exit_code == 1
    failed = [line for line in edited.output.splitlines() if "FAILED" in line]
    assert [line.split()[1] for line in failed] == ["2", "3"], edited.output
    assert "does not match its hash" in failed[0] and "local_date/local_time" in failed[1]


@pytest.mark.parametrize("hub_backend", ["sqlite"], indirect=True)
def test_verify_export_checks_xlsx_and_a_recomputed_hash_without_the_key(hub, make_kiosk, invoke,
                                                                        tmp_path: Path) -> None:
    from openpyxl import load_workbook
    kiosk = make_kiosk(hub=hub)
    kiosk.punch("E1", 2)
    kiosk.agent.push()
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(devices.device_keys(hub.db)))
    book_path = tmp_path / "payroll.xlsx"
    book_path.write_bytes(_payroll(hub, "xlsx"))
    first = invoke("hub", "verify-export", str(book_path), "--keys", str(keys))
    assert first.exit_code == 0, first.output
    book = load_workbook(book_path)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    # Whoever edits a row and recomputes its hash still cannot sign it: the signature names the row.
    record = {name: sheet.cell(row=2, column=header.index(name) + 1).value for name in header}
    record.update({name: record[name] or "" for name in ("flags", "note", "author", "direction")})  # empty cells
    record.update(employee_id="E9", mono_ns=int(record["mono_ns"]))
    sheet.cell(row=2, column=header.index("employee_id") + 1).value = "E9"
    sheet.cell(row=2, column=header.index("hash") + 1).value = punch_hash(record)
    book.save(book_path)
    result = invoke("hub", "verify-export", str(book_path), "--keys", str(keys), "--json")
    assert result.exit_code == 1
    verdicts = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(v["row"], v["status"]) for v in verdicts] == [(1, "failed")]
    assert "signature does not verify" in verdicts[0]["reason"]


def test_signature_helpers_refuse_malformed_input() -> None:
    raw = new_private_key()
    digest = "ab" * 32
    signature = sign_hash(raw, digest)
    assert signature_valid(public_key(raw), digest, signature)
    for pub, dig, sig in ((public_key(raw), "cd" * 32, signature), ("zz", digest, signature),
                          (public_key(raw), digest, "00" * 64), (public_key(raw), digest, "x"),
                          (public_key(raw), "é" * 3, signature)):
        assert not signature_valid(pub, dig, sig)
