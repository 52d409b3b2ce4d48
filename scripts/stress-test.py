#!/usr/bin/env python3
"""Run the hardware, daemon and sync tests many times on a loaded machine and count failures per test.

Races hide on an idle machine. This starts CPU hogs (busy-loop processes, killed however the run
ends), runs the chosen test files RUNS times with pytest, reads each run's JUnit report, and prints
how often each test failed. Exit status 1 when any run failed.

    python scripts/stress-test.py                 # 20 runs under two hogs (what `make stress-test` does)
    python scripts/stress-test.py --runs 5 --hogs 4 tests/test_hw_gps.py
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GLOBS = ("tests/test_hw_*.py", "tests/test_daemon_*.py", "tests/test_sync_*.py", "tests/test_hub_faults.py")
HOG_CODE = "while True:\n    pass\n"


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
    args = parser.parse_args()
    files = args.files or default_files()
    # SIGTERM ends the runs like Ctrl-C: the running pytest and the hogs are stopped, the summary printed.
    signal.signal(signal.SIGTERM, interrupt)
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
        stop_hogs(hogs)
    print(f"\nsummary: {done} run(s) in {(time.monotonic() - started) / 60:.0f} min under {args.hogs} hog(s), "
          f"{failed_runs} with failures")
    for test, count in per_test.most_common():
        print(f"  {count:3d}/{done}  {test}")
    if not per_test:
        print("  no test failed")
    return 1 if per_test or done < args.runs else 0


if __name__ == "__main__":
    sys.exit(main())
