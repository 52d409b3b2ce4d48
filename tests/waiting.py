"""The one way tests wait: poll a condition until it holds, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT_S = 30.0


def wait_for(predicate: Callable[[], Any], timeout_s: float = DEFAULT_TIMEOUT_S, interval_s: float = 0.02,
             what: str = "") -> Any:
    """Poll until ``predicate()`` is truthy; returns its value or fails the test, naming ``what``.

    The timeout is a generous upper bound for a loaded machine, not a speed requirement.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout_s:.0f} s")
        time.sleep(interval_s)
