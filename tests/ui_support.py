"""Support for the kiosk-screen tests: the real daemon with a fake camera that shows scenes of real
photos, and a real headless Chromium (Debian's `chromium`) driven by Playwright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from waiting import wait_for

from conftest import skip_or_fail
from kiosk.tools.benchkit import free_port  # noqa: F401 - the tests' free port, as the benchmarks'

CHROMIUM = Path(os.environ.get("KIOSK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 90


IDLE_GRAY = 96
IDLE_FRAMES = 8  # distinct pictures of the empty counter, shown in a loop
MARK_PX = 48


def idle_frame(index: int) -> np.ndarray:
    """The empty counter; a flat square in the corner numbers the frame, so a test can tell from the
    live preview which idle frames the daemon has taken in."""
    image = np.full((480, 640, 3), IDLE_GRAY, np.uint8)
    image[:MARK_PX, :MARK_PX] = idle_mark_level(index)
    return image


def idle_mark_level(index: int) -> int:
    return 140 + 12 * index  # far from the background and from each other, whatever JPEG does to them


def idle_index(image: np.ndarray | None) -> int | None:
    """Which idle frame a preview picture shows, or None when it is not one (a face, another size)."""
    if image is None or image.shape[:2] != (480, 640):
        return None
    rest = image[MARK_PX + 8:, MARK_PX + 8:]
    if abs(float(rest.mean()) - IDLE_GRAY) > 3 or float(rest.std()) > 3:
        return None
    level = float(image[8:MARK_PX - 8, 8:MARK_PX - 8].mean())
    index = round((level - idle_mark_level(0)) / 12)
    return index if 0 <= index < IDLE_FRAMES and abs(level - idle_mark_level(index)) < 4 else None


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
        self.show([idle_frame(i) for i in range(IDLE_FRAMES)])

    def empty(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()


def preview_image(url: str) -> np.ndarray | None:
    """The screen's live preview (/api/preview.jpg): the newest frame the daemon took in."""
    with urllib.request.urlopen(url + "api/preview.jpg", timeout=10) as response:
        data = response.read()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None


def wait_for_idle_frames(url: str, count: int, timeout_s: float = 120) -> None:
    """Wait until the daemon has taken in ``count`` different frames of the empty counter (seen on the
    preview, which shows each frame the daemon handles: a frame seen there was handled)."""
    seen: set[int] = set()

    def enough() -> bool:
        index = idle_index(preview_image(url))
        if index is not None:
            seen.add(index)
        return len(seen) >= count

    wait_for(enough, timeout_s, interval_s=0.03,
             what=lambda: f"{count} idle frames on the preview (saw {sorted(seen)})")


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

        def screen_up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"kiosk run exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(url + "healthz", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(screen_up, START_TIMEOUT_S, interval_s=0.2,
                 what=lambda: f"the kiosk screen at {url}:\n{self.log()}")

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("kiosk run did not stop within 60 s of SIGTERM") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, *fragments: str, timeout_s: float = 120) -> None:
        """Wait for a log line holding every fragment (a device state the screen does not show)."""
        wait_for(lambda: any(all(f in line for f in fragments) for line in self.log().splitlines()), timeout_s,
                 interval_s=0.1, what=f"a daemon log line with {fragments}")


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    skip_or_fail(f"{CHROMIUM} not found: install Debian's chromium (make venv does, as root) or set KIOSK_CHROMIUM")


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
