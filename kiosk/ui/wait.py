"""`python -m kiosk.ui.wait [URL] [TIMEOUT_S]`: wait until the kiosk screen answers; exit 0, or 1 on
timeout. kiosk-browser.service runs it before starting Chromium (the daemon loads models first)."""

from __future__ import annotations

import sys
import time
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/"
DEFAULT_TIMEOUT_S = 180.0
POLL_S = 1.0


def screen_is_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(url: str, timeout_s: float) -> bool:
    """True as soon as ``url`` serves the screen; False after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not screen_is_up(url):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def main(argv: list[str]) -> int:
    url = argv[0] if argv else DEFAULT_URL
    timeout_s = float(argv[1]) if len(argv) > 1 else DEFAULT_TIMEOUT_S
    if wait_for(url, timeout_s):
        return 0
    print(f"the kiosk screen did not answer at {url} within {timeout_s:.0f} s: is `kiosk run` running with "
          "[ui] enabled = true and this port?", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
