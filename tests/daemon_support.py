"""Daemon scenario support: image-sequence cameras built from real photos, and the real `kiosk run`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from conftest import REPO, run_kiosk
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
              *[str(p) for p in photos], *extra, "--config", str(config), check=True, timeout=300)


def run_daemon(config: Path, *sets: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`kiosk run --exit-when-camera-ends` to completion; returns the process and its events."""
    args = ["run", "--config", str(config), "--exit-when-camera-ends"]
    for item in sets:
        args += ["--set", item]
    proc = run_kiosk(*args, timeout=timeout)
    return proc, parse_events(proc.stdout)


def start_daemon(config: Path, *sets: str, env: dict | None = None) -> subprocess.Popen:
    """`kiosk run` in the background (stop it with SIGTERM)."""
    args = [sys.executable, "-m", "kiosk", "run", "--config", str(config)]
    for item in sets:
        args += ["--set", item]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def parse_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def kinds(events: list[dict]) -> list[str]:
    return [e["kind"] for e in events if e["kind"] not in ("ready", "time_unverified")]
