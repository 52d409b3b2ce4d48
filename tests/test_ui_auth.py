"""Admin PIN: salted scrypt hash in the encrypted store, lockout after repeated failures (surviving a
restart), idle logout, every step audited; `kiosk admin set-pin` sets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_kiosk
from kiosk.base.errors import InvalidInput
from kiosk.config import load_config
from kiosk.store import open_store
from kiosk.ui.auth import LOCK_META_KEY, PIN_META_KEY, AdminAuth, check_pin_rules, hash_pin, set_pin, verify_pin

PIN = "246810"


class Clock:
    """A monotonic clock the test moves by hand (the code under test takes any callable)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def auth_for(store, clock: Clock, max_failures: int = 5, lockout_s: float = 300, idle_s: float = 120) -> AdminAuth:
    return AdminAuth(store, max_failures, lockout_s, idle_s, clock=clock)


def actions(store) -> list[str]:
    return [row["action"] for row in reversed(store.audit_log(200))]


def test_pin_hash_is_salted_and_verifies() -> None:
    first, second = hash_pin(PIN), hash_pin(PIN)
    assert first != second and first.startswith("scrypt$")
    assert PIN not in first
    assert verify_pin(PIN, first) and verify_pin(PIN, second)
    assert not verify_pin("246811", first)
    assert not verify_pin(PIN, "garbage")


@pytest.mark.parametrize("pin", ["", "12345", "x" * 65, "12345\n6"])
def test_pin_rules_refuse_short_long_or_control_characters(pin: str) -> None:
    with pytest.raises(InvalidInput):
        check_pin_rules(pin)


def test_lockout_after_five_failures_then_unlock(fresh_store) -> None:
    set_pin(fresh_store, PIN)
    clock = Clock()
    auth = auth_for(fresh_store, clock)
    remaining = [auth.login("000000").remaining for _ in range(4)]
    assert remaining == [4, 3, 2, 1]
    fifth = auth.login("000000")
    assert fifth.code == "locked" and fifth.retry_after_s == 300
    clock.now += 120
    refused = auth.login(PIN)  # the right PIN is refused while locked
    assert refused.code == "locked" and refused.retry_after_s == 180 and refused.token is None
    clock.now += 181
    ok = auth.login(PIN)
    assert ok.ok and ok.token and auth.check(ok.token)
    log = actions(fresh_store)
    assert log.count("admin.login_failed") == 5 and "admin.lockout" in log and log[-1] == "admin.login"
    assert PIN_META_KEY not in json.dumps(fresh_store.audit_log(200))  # no hash or PIN in the audit log


def test_lockout_survives_a_restart(fresh_store) -> None:
    set_pin(fresh_store, PIN)
    auth = auth_for(fresh_store, Clock())
    for _ in range(5):
        auth.login("999999")
    assert json.loads(fresh_store.get_meta(LOCK_META_KEY))["until_utc"]
    restarted = auth_for(fresh_store, Clock())
    assert restarted.login(PIN).code == "locked"


def test_idle_session_logs_out_and_is_audited(fresh_store) -> None:
    set_pin(fresh_store, PIN)
    clock = Clock()
    ended: list[str] = []
    auth = AdminAuth(fresh_store, 5, 300, 60, clock=clock, on_end=ended.append)
    token = auth.login(PIN).token
    clock.now += 59
    assert auth.check(token)  # a touch keeps it alive...
    clock.now += 59
    assert auth.check(token)
    assert not auth.check("someone-else")
    clock.now += 61
    assert auth.expire_idle() and ended == ["idle"]
    assert not auth.check(token)
    detail = [json.loads(r["detail"]) for r in fresh_store.audit_log(5) if r["action"] == "admin.logout"]
    assert detail == [{"reason": "idle"}]


def test_without_a_pin_admin_mode_is_closed(fresh_store) -> None:
    assert AdminAuth(fresh_store, 5, 300, 60).login("").code == "no_pin"


def test_set_pin_cli(kiosk_home: Path) -> None:
    short = run_kiosk("admin", "set-pin", "--config", str(kiosk_home), "--pin-stdin", input_text="123\n")
    assert short.returncode == 1 and "6-64" in short.stderr and "Traceback" not in short.stderr
    done = run_kiosk("admin", "set-pin", "--config", str(kiosk_home), "--pin-stdin", input_text=f"{PIN}\n")
    assert done.returncode == 0, done.stderr
    with open_store(load_config(kiosk_home)) as store:
        stored = store.get_meta(PIN_META_KEY)
        assert verify_pin(PIN, stored)
        assert "admin.set_pin" in actions(store)
    assert PIN.encode() not in Path(load_config(kiosk_home).store.path).read_bytes()


@pytest.mark.parametrize("io_encoding", ["utf-8:surrogateescape", "utf-8:strict"])
def test_set_pin_cli_refuses_bytes_that_are_not_text(kiosk_home: Path, io_encoding: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "kiosk", "admin", "set-pin", "--config", str(kiosk_home),
                           "--pin-stdin"], input=b"\xff\xfe12345678\n", capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONIOENCODING": io_encoding})
    stderr = proc.stderr.decode()
    assert proc.returncode == 1 and "not valid UTF-8 text" in stderr and "Traceback" not in stderr
    with open_store(load_config(kiosk_home)) as store:
        assert store.get_meta(PIN_META_KEY) is None
