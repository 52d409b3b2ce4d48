"""Support for the kiosk-screen tests: the real daemon with a fake camera that shows scenes of real
photos, and a real headless Chromium (Debian's `chromium`) driven by Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("KIOSK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Scene:
    """What the fake camera sees: the image folder of an `images:DIR?loop=1` source.

    The camera lists the folder again each time it reaches the end, so a new scene is written
    first and the old files removed after (the folder is never empty unless ``empty()``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def show(self, images: list[np.ndarray | Path]) -> None:
        self._n += 1
        old = list(self.folder.iterdir())
        for i, image in enumerate(images):
            target = self.folder / f"s{self._n:03d}_{i:03d}.png"
            tmp = self.folder / f".tmp{target.name}"
            if isinstance(image, Path):
                cv2.imwrite(str(tmp), cv2.imread(str(image), cv2.IMREAD_COLOR))
            else:
                cv2.imwrite(str(tmp), image)
            os.replace(tmp, target)
        for path in old:
            path.unlink(missing_ok=True)

    def idle(self) -> None:
        """An empty counter: nobody in view."""
        self.show([np.full((480, 640, 3), 96, np.uint8)])

    def empty(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()


class Daemon:
    """`python -m kiosk run` in a child process; events (JSON lines) and logs go to files."""

    def __init__(self, config: Path, overrides: list[str], workdir: Path) -> None:
        self.config, self.overrides = config, overrides
        self.events_path, self.log_path = workdir / "events.jsonl", workdir / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self, url: str) -> None:
        args = [sys.executable, "-m", "kiosk", "run", "--config", str(self.config)]
        for override in self.overrides:
            args += ["--set", override]
        with self.events_path.open("w") as out, self.log_path.open("w") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kiosk run exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(url + "healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the kiosk screen did not come up at {url}:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("kiosk run did not stop within 30 s of SIGTERM") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (f"{CHROMIUM} not found: install Debian's chromium (make venv does, as root) or set "
               "KIOSK_CHROMIUM")
    if os.environ.get("CI"):
        raise AssertionError(message)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator:
    """A real headless Chromium (own temporary profile); yields a Playwright Browser whose
    ``new_context`` gives fresh, isolated pages."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 800, height: int = 480):  # noqa: ANN001, ANN201
    """A page in a fresh context (no cookies, no storage) at a kiosk panel's size."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    return context.new_page()
