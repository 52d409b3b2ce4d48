"""What the operator reads: `kiosk init`'s next steps, aligned tables, values as written in TOML, errors
that say what is valid, sync reports that say which step failed, and a read-only `db verify`."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from test_store_durability import _tmpfs

from conftest import run_kiosk
from kiosk.cli.util import display_width
from kiosk.config import load_config
from kiosk.store import open_store
from kiosk.store.punches import PunchDraft


def test_init_turns_the_screen_on_and_lists_what_follows(tmp_path: Path, invoke) -> None:
    result = invoke("init", str(tmp_path / "screen"))
    config = tmp_path / "screen" / "kiosk.toml"
    assert result.exit_code == 0 and load_config(config).ui.enabled
    steps = result.output.split("Next:\n", 1)[1].splitlines()
    assert [s.split(".")[0].strip() for s in steps] == ["1", "2", "3", "4", "5"]
    assert f"kiosk admin set-pin --config {config}" in steps[0]
    assert "kiosk enroll add" in steps[1] and f"kiosk run --config {config}" in steps[2]
    assert "http://127.0.0.1:8080/" in steps[2] and "kiosk-browser.service" in steps[3]
    assert "kiosk sync register" in steps[4]
    headless = invoke("init", str(tmp_path / "headless"), "--no-screen")
    assert not load_config(tmp_path / "headless" / "kiosk.toml").ui.enabled
    assert "set-pin" not in headless.output and "kiosk-browser" not in headless.output
    assert "screen   off (ui.enabled = false)" in headless.output


def test_employee_list_lines_up_with_chinese_names(kiosk_home: Path, invoke) -> None:
    cfg = ("--config", str(kiosk_home))
    for employee_id, name, card in (("E001", "王丽", "0012345678"), ("E002", "Li Na", "4000"),
                                    ("E003", "欧阳娜娜", "123,14706")):
        assert invoke("employee", "add", employee_id, "--name", name, "--card", card, *cfg).exit_code == 0
    lines = invoke("employee", "list", *cfg).stdout.splitlines()
    assert lines[0].startswith("ID") and len(lines) == 4
    # Every column starts at the same terminal column on every line.
    starts = {display_width(line[:line.index(" B001" if i else " BRANCH")]) for i, line in enumerate(lines)}
    cards = {display_width(line[:line.index(" 00" if i else " CARDS")]) for i, line in enumerate(lines)}
    assert len(starts) == 1 and len(cards) == 1, lines


def test_config_values_are_shown_as_written_in_toml(kiosk_home: Path, invoke) -> None:
    result = invoke("config", "check", str(kiosk_home), "--set", "ui.language=true", "--set", "ui.preview=[1, 2]")
    assert result.exit_code == 1
    assert "ui.language = true: " in result.output and "ui.preview = [1, 2]: " in result.output
    assert "True" not in result.output


def test_a_bad_employee_id_says_what_is_valid(kiosk_home: Path, invoke) -> None:
    result = invoke("employee", "add", "E 007", "--name", "X", "--config", str(kiosk_home))
    assert result.exit_code == 1
    assert "employee id 'E 007' is not valid: use 1-64 letters, digits, '_', '.' or '-'" in result.output
    assert "(no spaces)" in result.output


def test_sync_once_names_the_step_that_failed_and_reports_enrolments(hub, make_kiosk, invoke) -> None:
    kiosk = make_kiosk(hub=hub)
    kiosk.punch("E1", 3)
    cfg = ("--config", str(kiosk.path), "--set", "sync.connect_timeout_s=2")
    good = invoke("sync", "once", *cfg)
    assert good.exit_code == 0, good.output
    assert "push: 3 accepted" in good.output and "enrolments: 0 enrolment(s)" in good.output
    assert "roster: 0 updated" in good.output and "heartbeat: sent" in good.output
    status = invoke("sync", "status", "--config", str(kiosk.path)).output
    clock = next(line for line in status.splitlines() if line.startswith("hub_clock"))
    assert re.search(r"hub (ahead of|behind) this kiosk by \d+\.\d{3} s \(± \d+\.\d{3} s, from x-hub-time\), "
                     r"measured \d{4}-", clock) and "{" not in clock
    hub.server.stop()
    bad = invoke("sync", "once", *cfg)
    assert bad.exit_code == 1
    assert re.search(r"^roster: FAILED: ", bad.output, re.M) and "roster: 0 updated" not in bad.output
    assert re.search(r"^push: 0 accepted", bad.output, re.M)  # nothing left to push: no call, no failure
    assert re.search(r"^heartbeat: FAILED: ", bad.output, re.M)


def test_register_that_cannot_reach_the_hub_says_what_to_do_now(kiosk_home: Path, invoke) -> None:
    result = invoke("sync", "register", "--hub", "http://127.0.0.1:9", "--code", "7KQM-X2PA-9HDE-CW4R",
                    "--config", str(kiosk_home))
    assert result.exit_code != 0 and "nothing was changed" in result.output
    assert "run `kiosk sync register` again" in result.output and "retries with backoff" not in result.output


def test_hub_device_list_shows_the_backlog(hub, make_kiosk, tmp_path: Path) -> None:
    kiosk = make_kiosk(hub=hub)
    kiosk.punch("E1", 2)
    kiosk.agent.heartbeat()
    hub_toml = tmp_path / "hub.toml"
    db = hub.server.config.database
    if db.backend == "sqlite":
        hub_toml.write_text(f'[database]\nbackend = "sqlite"\nsqlite_path = "{db.sqlite_path}"\n')
    else:
        hub_toml.write_text(f'[database]\nbackend = "postgres"\npostgres_dsn = "{db.postgres_dsn}"\n'
                            f'postgres_schema = "{db.postgres_schema}"\n')
    listed = run_kiosk("hub", "device", "list", "--config", str(hub_toml), check=True).stdout.splitlines()
    column = listed[0].index("BACKLOG")
    assert listed[1][column:column + len("BACKLOG")].strip() == "2", listed


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_db_verify_reads_a_read_only_store_without_writing(tmp_path: Path, invoke) -> None:
    """A seized SD card: mounted read-only, with punches still in the WAL (the kiosk lost power)."""
    home = tmp_path / "kiosk"
    assert invoke("init", str(home), "--no-screen").exit_code == 0
    config = load_config(home / "kiosk.toml")
    store = open_store(config)
    store.roster.add("E001", "Li Na")
    for _ in range(3):
        store.punches.append(PunchDraft("E001", "manual", note="x"))
    with _tmpfs(tmp_path / "card", "16m") as card:
        for name in ("kiosk.toml", "kiosk-db.key", "kiosk.db", "kiosk.db-wal"):
            shutil.copyfile(home / name, card / name)  # as it was on the card when the power went
        (card / "kiosk-db.key").chmod(0o600)
        store.close()
        assert (card / "kiosk.db-wal").stat().st_size > 0
        subprocess.run(["mount", "-o", "remount,ro", str(card)], check=True)
        before = _digest(card)
        result = invoke("db", "verify", "--config", str(card / "kiosk.toml"))
        assert result.exit_code == 0, result.output
        assert "OK: 3 punches" in result.stdout and "private copy" in result.stderr
        assert _digest(card) == before
        subprocess.run(["mount", "-o", "remount,rw", str(card)], check=True)
        forced = invoke("db", "verify", "--read-only", "--config", str(card / "kiosk.toml"))
        assert forced.exit_code == 0 and "OK: 3 punches" in forced.stdout
        assert sorted(p.name for p in card.iterdir()) == sorted(before)  # no -shm, no new file beside it
