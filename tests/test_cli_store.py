"""The admin's store commands, run through the real CLI: init, employees, manual punches, export."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

from conftest import run_kiosk
from kiosk.config import load_config
from kiosk.store import open_store


def test_init_makes_a_working_home(tmp_path: Path) -> None:
    home = tmp_path / "branch7"
    proc = run_kiosk("init", str(home), "--branch", "B007", check=True)
    assert "kiosk run --config" in proc.stdout
    key = home / "kiosk-db.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    config = load_config(home / "kiosk.toml")
    assert config.device.branch == "B007"
    again = run_kiosk("init", str(home))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_employee_lifecycle(kiosk_home: Path, invoke) -> None:
    cfg = ("--config", str(kiosk_home))
    assert invoke("employee", "add", "E001", "--name", "王丽", "--card", "0012345678", *cfg).exit_code == 0
    dup = invoke("employee", "add", "E001", "--name", "Someone", *cfg)
    assert dup.exit_code == 1 and "already exists" in dup.output
    empty = invoke("employee", "add", "E002", "--name", "  ", *cfg)
    assert empty.exit_code == 1 and "name is empty" in empty.output
    bad_card = invoke("employee", "add", "E003", "--name", "X", "--card", "12!", *cfg)
    assert bad_card.exit_code == 1 and "card number" in bad_card.output
    taken = invoke("employee", "add", "E004", "--name", "Y", "--card", "0012345678", *cfg)
    assert taken.exit_code == 1 and "already belongs to employee E001" in taken.output
    listed = invoke("employee", "list", "--json", *cfg)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["E001"] and rows[0]["name"] == "王丽"
    assert invoke("punch", "--employee", "E001", "--note", "forgot card", *cfg).exit_code == 0
    unknown = invoke("punch", "--employee", "E999", "--note", "x", *cfg)
    assert unknown.exit_code == 1 and "no employee 'E999'" in unknown.output
    removed = invoke("employee", "remove", "E001", "--reason", "left", *cfg)
    assert removed.exit_code == 0 and "punches kept" in removed.output
    with open_store(load_config(kiosk_home)) as store:
        assert store.roster.by_card("0012345678") is None
        assert store.punches.count() == 1
        actions = [row["action"] for row in store.audit_log()]
    assert {"employee.add", "punch.manual", "employee.erase"} <= set(actions)


def test_export_formats(kiosk_home: Path, invoke) -> None:
    cfg = ("--config", str(kiosk_home))
    invoke("employee", "add", "E001", "--name", "Li", *cfg)
    assert invoke("punch", "--employee", "E001", "--note", "a", *cfg).exit_code == 0
    again = invoke("punch", "--employee", "E001", "--note", "b", *cfg)  # a second one within 5 minutes: a slip?
    assert again.exit_code == 1 and "already got a manual punch" in again.output and "--yes" in again.output
    for note in ("b", "c"):
        assert invoke("punch", "--employee", "E001", "--note", note, "--yes", *cfg).exit_code == 0
    jsonl = invoke("db", "export", *cfg).stdout.splitlines()
    records = [json.loads(line) for line in jsonl]
    assert [r["seq"] for r in records] == [1, 2, 3] and records[1]["prev_hash"] == records[0]["hash"]
    rows = list(csv.DictReader(io.StringIO(invoke("db", "export", "--format", "csv", *cfg).stdout)))
    assert [r["note"] for r in rows] == ["a", "b", "c"]
    future = invoke("db", "export", "--since", "2999-01-01", *cfg)
    assert future.exit_code == 0 and future.stdout == ""
    bad = invoke("db", "export", "--since", "yesterday", *cfg)
    assert bad.exit_code == 1 and "ISO 8601" in bad.output


def test_stats(kiosk_home: Path, invoke) -> None:
    result = invoke("db", "stats", "--json", "--config", str(kiosk_home))
    stats = json.loads(result.stdout)
    assert stats["punches"] == 0 and "001_initial" in stats["schema"]


def test_no_key_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "k"
    run_kiosk("init", str(home), check=True)
    text = (home / "kiosk.toml").read_text().replace('key_file = "kiosk-db.key"\n', "")
    (home / "kiosk.toml").write_text(text)
    proc = run_kiosk("db", "stats", "--config", str(home / "kiosk.toml"),
                     env={"KIOSK_DB_KEY": "", "CREDENTIALS_DIRECTORY": ""})
    assert proc.returncode == 1 and "no database key found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_init_where_no_folder_can_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_kiosk("init", str(blocker / "kiosk"))
    assert proc.returncode == 1 and "cannot create the kiosk home" in proc.stderr
    assert "what to do:" in proc.stderr and "Traceback" not in proc.stderr


def test_export_to_a_missing_folder(kiosk_home: Path, invoke) -> None:
    out = kiosk_home.parent / "no-such-folder" / "punches.jsonl"
    result = invoke("db", "export", "--out", str(out), "--config", str(kiosk_home))
    assert result.exit_code == 1 and "cannot write the export" in result.output
    assert "what to do:" in result.output and not out.exists()


def test_bench_store_refuses_counts_and_folders_it_cannot_use(invoke, tmp_path: Path) -> None:
    for args in (("--punches", "0"), ("--punches", "-1"), ("--opens", "0"), ("--dir", str(tmp_path / "nope"))):
        result = invoke("bench", "store", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Invalid value" in result.output


def test_bench_store_json_has_rates_and_cpu_per_punch_of_both_stores(invoke, tmp_path: Path) -> None:
    result = invoke("bench", "store", "--punches", "20", "--rounds", "2", "--opens", "2", "--dir", str(tmp_path),
                    "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.splitlines()[-1])
    cpu = data["cpu_us_per_punch"]
    for figure in (data["sqlcipher_punches_per_s"], data["sqlite_punches_per_s"], cpu["sqlcipher"], cpu["sqlite"]):
        assert 0 < figure["min"] <= figure["median"] <= figure["max"]
    # One durable append costs far more than 10 us of CPU in either store.
    assert cpu["sqlite"]["min"] > 10 and cpu["sqlcipher_vs_sqlite"]["median"] > 0
    # The same Store writes the same pages in both: the difference is what SQLCipher does to each of them.
    pages = data["pages_per_punch"]
    assert 4.0 <= pages["sqlite"]["median"] < 5.0
    assert abs(pages["sqlcipher"]["median"] - pages["sqlite"]["median"]) < 0.2
    assert data["rounds"] == 2 and list(tmp_path.iterdir()) == []


def test_init_values_are_quoted_and_bad_ones_named(tmp_path: Path) -> None:
    home = tmp_path / "quoted"
    run_kiosk("init", str(home), "--name", 'Branch "7" \\ 浦东', check=True)
    assert load_config(home / "kiosk.toml").device.name == 'Branch "7" \\ 浦东'
    bad = run_kiosk("init", str(tmp_path / "mars"), "--timezone", "Mars/Base")
    assert bad.returncode == 1 and "given to `kiosk init` is not valid" in bad.stderr
    assert "device.timezone = 'Mars/Base'" in bad.stderr and ".tmp" not in bad.stderr
    assert not (tmp_path / "mars" / "kiosk.toml").exists()
