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

FRAME_W, FRAME_H = 640, 480
BACKGROUND = 40


def compose(photo: Path | np.ndarray | None, shift: tuple[int, int] = (0, 0), scale: float = 1.0) -> np.ndarray:
    """A camera frame: the photo letterboxed on a plain background (None: nobody in view)."""
    canvas = np.full((FRAME_H, FRAME_W, 3), BACKGROUND, np.uint8)
    if photo is None:
        return canvas
    image = cv2.imread(str(photo)) if isinstance(photo, Path) else photo
    h, w = image.shape[:2]
    s = min((FRAME_H - 40) / h, (FRAME_W - 40) / w) * scale
    image = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    y = (FRAME_H - image.shape[0]) // 2 + shift[1]
    x = (FRAME_W - image.shape[1]) // 2 + shift[0]
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(FRAME_H, y + image.shape[0]), min(FRAME_W, x + image.shape[1])
    canvas[y0:y1, x0:x1] = image[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas


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
