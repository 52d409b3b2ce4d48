#!/usr/bin/env python3
"""Run the hardware, daemon and sync tests many times on a loaded machine and count failures per test.

Races hide on an idle machine. This starts CPU hogs (busy-loop processes), runs the chosen test files
RUNS times with pytest, reads each run's JUnit report, and prints how often each test failed. Exit
status 1 when any run failed.

However the run ends, nothing it started is left behind. Every process it starts (hogs, pytest, and
whatever pytest starts: daemons, hubs, serial stand-ins) carries a run token in its environment.
Ctrl-C, SIGTERM and SIGHUP (terminal closed) stop the runs and kill every process holding the token;
a reaper process in its own session waits on a pipe from this script and does the same if this
script dies without cleaning up (SIGKILL, OOM killer).

    python scripts/stress-test.py                 # 20 runs under two hogs (what `make stress-test` does)
    python scripts/stress-test.py --runs 5 --hogs 4 tests/test_hw_gps.py
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GLOBS = ("tests/test_hw_*.py", "tests/test_daemon_*.py", "tests/test_sync_*.py", "tests/test_hub_faults.py")
HOG_CODE = "while True:\n    pass\n"
TOKEN_VAR = "KIOSK_STRESS_RUN"


def tagged_pids(token: str) -> list[int]:
    """Processes (other than this one) whose environment carries ``token``: everything the run started."""
    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_tagged(token: str, grace_s: float = 5.0) -> int:
    """SIGTERM every tagged process, SIGKILL what is left after ``grace_s``; how many were found."""
    victims = tagged_pids(token)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and tagged_pids(token):
        time.sleep(0.2)
    for pid in tagged_pids(token):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(victims)


def reap_when_parent_dies(token: str) -> int:
    """The reaper: block until the pipe from the run closes (the run ended, however), then clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.stdin.buffer.read()
    left = kill_tagged(token)
    if left:
        print(f"stress-test reaper: stopped {left} process(es) the run left behind", file=sys.stderr, flush=True)
    return 0


def start_reaper(token: str) -> subprocess.Popen:
    """A process in its own session (Ctrl-C and hang-ups don't reach it) holding our pipe's read end."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
    return subprocess.Popen([sys.executable, __file__, "--reap", token], stdin=subprocess.PIPE, env=env,
                            start_new_session=True)


def default_files() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for pattern in DEFAULT_GLOBS for p in REPO.glob(pattern))


def start_hogs(count: int) -> list[subprocess.Popen]:
    """Busy loops, one process each, at normal priority (a hog that yields would prove nothing)."""
    return [subprocess.Popen([sys.executable, "-c", HOG_CODE], stdin=subprocess.DEVNULL) for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        if hog.poll() is None:
            hog.kill()
    for hog in hogs:
        hog.wait()


def stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group of ``proc``, then SIGKILL to whatever is left of it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def failures_in(report: Path) -> tuple[int, list[str]]:
    """(tests run, ids of the tests that failed or errored) from a JUnit XML report."""
    root = ET.parse(report).getroot()
    cases = list(root.iter("testcase"))
    failed = []
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            module = case.get("classname", "").replace(".", "/")
            failed.append(f"{module}.py::{case.get('name')}")
    return len(cases), failed


def run_once(index: int, runs: int, files: list[str], pytest_args: list[str], folder: Path) -> list[str]:
    report = folder / f"run-{index:03d}.xml"
    log = folder / f"run-{index:03d}.log"
    started = time.monotonic()
    with log.open("w") as out:
        # Its own process group: if this script is stopped, pytest and the daemons and hubs it
        # started go with it.
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 f"--junitxml={report}", *pytest_args, *files], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:
                stop_group(proc)
    elapsed = time.monotonic() - started
    if not report.exists():
        print(f"run {index}/{runs}: pytest exited {code} without a report; see {log}", flush=True)
        return [f"(run {index}: pytest exited {code} without a report)"]
    count, failed = failures_in(report)
    verdict = f"{len(failed)} failed: {', '.join(failed)}" if failed else "all passed"
    print(f"run {index}/{runs}: {count} tests in {elapsed:.0f} s, {verdict}", flush=True)
    return failed


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="test files (default: hardware, daemon and sync tests)")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 20)), help="runs (default 20)")
    parser.add_argument("--hogs", type=int, default=int(os.environ.get("HOGS", 2)),
                        help="busy-loop processes kept running meanwhile (default 2)")
    parser.add_argument("--keep", type=Path, help="keep each run's log and JUnit report in this folder")
    parser.add_argument("--pytest-arg", action="append", default=[], help="extra argument for pytest (repeatable)")
    parser.add_argument("--reap", metavar="TOKEN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reap:
        return reap_when_parent_dies(args.reap)
    files = args.files or default_files()
    # SIGTERM and SIGHUP end the runs like Ctrl-C: everything started is stopped, the summary printed.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    token = uuid.uuid4().hex
    os.environ[TOKEN_VAR] = token  # inherited by the hogs, pytest and all they start
    reaper = start_reaper(token)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kiosk-stress-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{args.runs} run(s) of {len(files)} file(s) under {args.hogs} CPU hog(s) on {os.cpu_count()} core(s); "
          f"logs in {folder}", flush=True)
    per_test: collections.Counter[str] = collections.Counter()
    failed_runs = done = 0
    started = time.monotonic()
    hogs = start_hogs(args.hogs)
    try:
        for index in range(1, args.runs + 1):
            failed = run_once(index, args.runs, files, args.pytest_arg, folder)
            per_test.update(failed)
            failed_runs += bool(failed)
            done = index
    except KeyboardInterrupt:
        print(f"interrupted during run {done + 1}", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stop_hogs(hogs)
        left = kill_tagged(token)
        if left:
            print(f"stopped {left} process(es) left behind by the runs", flush=True)
        reaper.stdin.close()  # the reaper finds nothing more and exits
        reaper.wait()
    print(f"\nsummary: {done} run(s) in {(time.monotonic() - started) / 60:.0f} min under {args.hogs} hog(s), "
          f"{failed_runs} with failures")
    for test, count in per_test.most_common():
        print(f"  {count:3d}/{done}  {test}")
    if not per_test:
        print("  no test failed")
    return 1 if per_test or done < args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
