"""Daemon scenario support: image-sequence cameras built from real photos, and the real `kiosk run`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from waiting import Lines

from conftest import CONSENT_ARGS, REPO, run_kiosk
from kiosk.tools import scenes as walkups


def compose(photo: Path | np.ndarray | None, shift: tuple[int, int] = (0, 0), scale: float = 1.0) -> np.ndarray:
    """A camera frame: the photo (a file or an image) letterboxed on a plain background."""
    image = cv2.imread(str(photo)) if isinstance(photo, Path) else photo
    return walkups.compose(image, shift, scale)


def write_sequence(folder: Path, steps: Sequence[tuple[Path | None, int]]) -> Path:
    """Write frames in name order: each step is (photo or None, how many frames)."""
    folder.mkdir(parents=True, exist_ok=True)
    index = 0
    for photo, count in steps:
        frame = compose(photo)
        for _ in range(count):
            cv2.imwrite(str(folder / f"{index:05d}.jpg"), frame)
            index += 1
    return folder


def copy_home(home_config: Path, dest: Path) -> Path:
    """A private copy of a prepared kiosk home (config, key, store)."""
    shutil.copytree(home_config.parent, dest)
    (dest / "kiosk-db.key").chmod(0o600)
    return dest / "kiosk.toml"


def enrol(config: Path, employee_id: str, name: str, photos: Sequence[Path], *extra: str) -> None:
    run_kiosk("enroll", "add", "--employee", employee_id, "--name", name, "--photos",
              *[str(p) for p in photos], *extra, *CONSENT_ARGS, "--config", str(config), check=True, timeout=300)


def own_screen_port(sets: Sequence[str]) -> tuple[str, ...]:
    """``sets`` with a free ``ui.port`` unless they name one: `kiosk init` turns the screen on at 8080, and daemons
    of tests running at once (pytest -n) or of another checkout would otherwise race for it (the loser logs
    that its screen is not served)."""
    if any(item.startswith("ui.port=") for item in sets):
        return tuple(sets)
    from ui_support import free_port
    return (*sets, f"ui.port={free_port()}")


def run_daemon(config: Path, *sets: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`kiosk run --exit-when-camera-ends` to completion; returns the process and its events."""
    args = ["run", "--config", str(config), "--exit-when-camera-ends"]
    for item in own_screen_port(sets):
        args += ["--set", item]
    proc = run_kiosk(*args, timeout=timeout)
    return proc, parse_events(proc.stdout)


class RunningDaemon:
    """`kiosk run` in the background; its stdout (JSON events) and stderr (log) gathered by threads, so
    a test waits for an event with a deadline and a chatty log never fills a pipe."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.out = Lines(self.proc.stdout, "daemon-stdout")
        self.err = Lines(self.proc.stderr, "daemon-stderr")

    def events(self) -> list[dict]:
        return parse_events("".join(self.out.lines))

    def wait_events(self, predicate: Callable[[list[dict]], Any], timeout_s: float, what: str) -> Any:
        """Wait until ``predicate(events so far)`` holds; fails with the log if the daemon exits first."""
        try:
            return self.out.wait(lambda lines: predicate(parse_events("".join(lines))), timeout_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{''.join(self.err.lines[-40:])}") from None

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then wait for the exit and the end of both streams; returns the exit code."""
        try:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.out.text(timeout_s)
        self.err.text(timeout_s)
        return code

    def log(self) -> str:
        return "".join(self.err.lines)


def start_daemon(config: Path, *sets: str, env: dict | None = None) -> RunningDaemon:
    """`kiosk run` in the background (stop it with ``stop()``: SIGTERM)."""
    args = [sys.executable, "-m", "kiosk", "run", "--config", str(config)]
    for item in own_screen_port(sets):
        args += ["--set", item]
    return RunningDaemon(args, {**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def parse_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def kinds(events: list[dict]) -> list[str]:
    return [e["kind"] for e in events if e["kind"] not in ("ready", "time_unverified")]
