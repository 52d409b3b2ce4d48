"""Acknowledged punches survive SIGKILL, tampering is detected, and disk faults lose nothing."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import Lines

from conftest import REPO
from kiosk.base.errors import StoreError
from kiosk.config import load_config
from kiosk.store import Store, open_store
from kiosk.store.punches import PunchDraft

KILL_ROUNDS = 12


def _acknowledged_until_killed(proc: subprocess.Popen, kill_after: int) -> list[str]:
    """Once the child has acknowledged ``kill_after`` punches (it goes on appending meanwhile), SIGKILL
    it wherever it is in its next append, and return every id it printed."""
    out = Lines(proc.stdout, "punch-loop")
    try:
        out.wait(lambda lines: len(lines) > kill_after, 120, what=f"{kill_after} acknowledged punches")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    lines = out.text(60).splitlines()
    assert lines[0] == "ready"
    return lines[1:]


def test_sigkill_never_loses_an_acknowledged_punch(kiosk_home: Path, invoke) -> None:
    assert invoke("employee", "add", "E001", "--name", "Li Na", "--config", str(kiosk_home)).exit_code == 0
    rng = random.Random(1234)
    acknowledged: list[str] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(KILL_ROUNDS):
        proc = subprocess.Popen([sys.executable, str(REPO / "tests/helpers/punch_loop.py"), str(kiosk_home)],
                                stdout=subprocess.PIPE, text=True, env=env)
        acknowledged += _acknowledged_until_killed(proc, rng.randint(1, 30))
    with open_store(load_config(kiosk_home)) as store:
        stored = {p.id for p in store.punches.iter()}
    missing = [i for i in acknowledged if i not in stored]
    assert missing == []
    result = invoke("db", "verify", "--config", str(kiosk_home))
    assert result.exit_code == 0, result.output


def _decrypted(store: Store):
    """The attacker's view: the same key, and the append-only triggers dropped."""
    store.conn.execute("DROP TRIGGER punches_no_update")
    store.conn.execute("DROP TRIGGER punches_no_delete")
    return store.conn


@pytest.fixture
def five_punches(fresh_store: Store) -> Store:
    fresh_store.roster.add("E001", "Li Na")
    for _ in range(5):
        fresh_store.punches.append(PunchDraft("E001", "card", "verified"))
    return fresh_store


def test_store_refuses_to_change_punches(five_punches: Store) -> None:
    with pytest.raises(StoreError, match="append-only"):
        with five_punches.atomic():
            five_punches.conn.execute("UPDATE punches SET employee_id = 'E999' WHERE seq = 2")
    with pytest.raises(StoreError, match="append-only"):
        with five_punches.atomic():
            five_punches.conn.execute("DELETE FROM punches WHERE seq = 2")
    assert five_punches.punches.verify().ok


def test_edited_punch_is_detected(five_punches: Store, kiosk_home: Path, invoke) -> None:
    _decrypted(five_punches).execute("UPDATE punches SET ts_utc = '2020-01-01T00:00:00.000Z' WHERE seq = 3")
    report = five_punches.punches.verify()
    assert not report.ok and report.bad_seq == 3 and "altered" in report.problem
    result = invoke("db", "verify", "--config", str(kiosk_home))
    assert result.exit_code == 1 and "seq 3" in result.output


def test_deleted_punch_is_detected(five_punches: Store) -> None:
    _decrypted(five_punches).execute("DELETE FROM punches WHERE seq = 2")
    report = five_punches.punches.verify()
    assert not report.ok and report.bad_seq == 3 and "missing" in report.problem


def test_rehashed_edit_breaks_the_chain(five_punches: Store) -> None:
    """Even recomputing the edited record's own hash is caught by the next link."""
    from kiosk.base.record import punch_hash
    conn = _decrypted(five_punches)
    row = five_punches.query("SELECT * FROM punches WHERE seq = 2")[0]
    row["employee_id"] = "E666"
    conn.execute("UPDATE punches SET employee_id = ?, hash = ? WHERE seq = 2", [row["employee_id"], punch_hash(row)])
    report = five_punches.punches.verify()
    assert not report.ok and report.bad_seq == 3 and "chain" in report.problem


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (real full/read-only filesystem)")
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _tmpfs_home(mnt: Path, invoke) -> Path:
    home = mnt / "kiosk"
    assert invoke("init", str(home)).exit_code == 0
    config = home / "kiosk.toml"
    assert invoke("employee", "add", "E001", "--name", "Li Na", "--config", str(config)).exit_code == 0
    return config


def test_full_disk_refuses_cleanly_and_keeps_punches(tmp_path: Path, invoke) -> None:
    with _tmpfs(tmp_path / "mnt", "600k") as mnt:
        config_path = _tmpfs_home(mnt, invoke)
        config = load_config(config_path)
        stored = []
        with open_store(config) as store:
            with pytest.raises(StoreError) as err:
                for _ in range(100_000):
                    stored.append(store.punches.append(PunchDraft("E001", "manual", note="x" * 400)).id)
            assert "disk" in err.value.what and "full" in err.value.what
        result = invoke("punch", "--employee", "E001", "--note", "disk still full", "--config", str(config_path))
        assert result.exit_code != 0 and "Traceback" not in result.output
        with open_store(config) as store:
            ids = {p.id for p in store.punches.iter()}
            assert set(stored) <= ids
            assert store.punches.verify().ok


def test_read_only_filesystem_refuses_cleanly(tmp_path: Path, invoke) -> None:
    with _tmpfs(tmp_path / "mnt", "8m") as mnt:
        config_path = _tmpfs_home(mnt, invoke)
        assert invoke("punch", "--employee", "E001", "--note", "a", "--config", str(config_path)).exit_code == 0
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        result = invoke("punch", "--employee", "E001", "--note", "b", "--config", str(config_path))
        assert result.exit_code != 0
        assert "read-only filesystem" in result.output and "remount" in result.output
        assert "Traceback" not in result.output
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        result = invoke("db", "verify", "--config", str(config_path))
        assert result.exit_code == 0 and "1 punches" in result.output
