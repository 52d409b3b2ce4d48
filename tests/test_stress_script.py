"""`make stress-test` leaves nothing behind, however it ends.

A stress run starts CPU hogs, pytest, and whatever the tests start (daemons, hubs; some in their own
session). These tests start a real run of scripts/stress-test.py on a test that spawns a detached
grandchild, end the run the hard ways (SIGKILL, which no handler sees; a hang-up; SIGTERM), and wait
until no process started by the run is alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "stress-test.py"

# The test the stress run runs: a grandchild in a session of its own (as a daemon would start one),
# then it reports the run's token and blocks until it is killed.
SLOW_TEST = '''
import os, subprocess, sys, time
from pathlib import Path

def test_blocks():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"], start_new_session=True)
    out = Path(os.environ["STRESS_PROBE_OUT"])
    out.write_text(f"{os.environ['KIOSK_STRESS_RUN']} {os.getpid()} {child.pid}")
    time.sleep(900)
'''


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited: it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _holding(token: str) -> list[int]:
    """Live processes whose environment carries the run's token."""
    needle = f"KIOSK_STRESS_RUN={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0") and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_an_ended_run_leaves_no_process_behind(tmp_path: Path, how: signal.Signals) -> None:
    test_file = tmp_path / "test_slow_probe.py"
    test_file.write_text(SLOW_TEST)
    probe = tmp_path / "probe.txt"
    log = (tmp_path / "run.log").open("w+")  # not a pipe: a leftover child holding it would block reading
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--runs", "3", "--hogs", "1", str(test_file)],
                           cwd=REPO, env={**os.environ, "STRESS_PROBE_OUT": str(probe)},
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: probe.exists() and len(probe.read_text().split()) == 3, 120,
                 what="the stress run's test to start its grandchild")
        token, pytest_pid, grandchild = probe.read_text().split()
        started = _holding(token)
        # The hog, pytest and the detached grandchild (at least) are running under the token.
        assert {int(pytest_pid), int(grandchild)} <= set(started) and len(started) >= 3, started
        run.send_signal(how)
        run.wait(timeout=120)
        output = (tmp_path / "run.log").read_text()
        # A process being killed stops showing its environment before it is gone: wait for both views.
        wait_for(lambda: not _holding(token) and not _alive(int(grandchild)) and not _alive(int(pytest_pid)), 120,
                 what=lambda: f"processes still holding the token: {_holding(token)}, grandchild alive "
                              f"{_alive(int(grandchild))}, pytest alive {_alive(int(pytest_pid))}")
        if how == signal.SIGKILL:
            assert run.returncode == -signal.SIGKILL  # nothing in the script ran: the reaper cleaned up
        else:
            # The script itself stopped the runs and still printed its summary.
            assert "interrupted during run 1" in output and "summary: 0 run(s)" in output, output
            assert run.returncode == 1
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        log.close()
