"""The one way tests wait: poll a condition until it holds, never sleep a fixed time.

``wait_for`` is the only polling loop in the tests; ``wait_state`` (a device's current state),
``StateHistory`` (every state it went through) and ``Lines`` (a child's output) are built on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

DEFAULT_TIMEOUT_S = 60.0


def wait_for(predicate: Callable[[], Any], timeout_s: float = DEFAULT_TIMEOUT_S, interval_s: float = 0.02,
             what: str | Callable[[], str] = "") -> Any:
    """Poll until ``predicate()`` is truthy; returns its value or fails the test, naming ``what``.

    ``what`` may be a callable, asked only on failure (to show the state the wait ended in).
    The timeout is a generous upper bound for a loaded machine, not a speed requirement.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"{described or 'condition'} not met within {timeout_s:g} s")
        time.sleep(interval_s)


def wait_state(device: Any, *states: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Wait until a hardware device's state is one of ``states``; returns its status.

    Wait for a state the device has to *reach*: a state it starts in proves nothing.
    """
    wanted = " or ".join(s.value for s in states)
    wait_for(lambda: device.status.state in states, timeout_s, interval_s=0.01,
             what=lambda: f"{device.name} {wanted} (still {device.status.state.value}: {device.status.reason})")
    return device.status


class StateHistory:
    """Every status a hardware device passes through, recorded by a listener from the moment it is
    attached, so a test waits for the state a device *reached*, even one it has already left again
    (a short RUNNING between two stalls), and in order.

    ``mark()`` before acting on the device; ``wait(STATE)`` then looks only at what came after the
    mark (or after the status the previous ``wait`` found), so a state from before the action never counts.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.statuses: list[Any] = []
        self._from = 0
        device.add_listener(self.statuses.append)

    def mark(self) -> None:
        self._from = len(self.statuses)

    def wait(self, *states: Any, reason: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
        """The first status after the mark in one of ``states`` (whose reason holds ``reason``)."""
        def found() -> int | None:
            for index in range(self._from, len(self.statuses)):
                status = self.statuses[index]
                if status.state in states and reason in status.reason:
                    return index + 1
            return None

        wanted = " or ".join(s.value for s in states) + (f" ({reason!r})" if reason else "")
        index = wait_for(found, timeout_s, interval_s=0.01, what=lambda: (
            f"{self.device.name} {wanted}; went through "
            f"{[(s.state.value, s.reason) for s in self.statuses[self._from:]]}"))
        self._from = index
        return self.statuses[index - 1]


class Lines:
    """Every line a child writes to a pipe, gathered by a thread so tests wait for lines, never block
    on a read that may not come. ``ended`` is set at end of file."""

    def __init__(self, stream: IO[str], name: str = "lines") -> None:
        self.lines: list[str] = []
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._gather, args=(stream,), name=f"read-{name}", daemon=True)
        self._thread.start()

    def _gather(self, stream: Iterable[str]) -> None:
        try:
            for line in stream:
                self.lines.append(line)
        finally:
            self.ended.set()

    def wait(self, predicate: Callable[[list[str]], Any], timeout_s: float = DEFAULT_TIMEOUT_S,
             what: str = "") -> Any:
        """Wait until ``predicate(lines so far)`` is truthy (fails early if the stream ends without it)."""
        def check() -> Any:
            ended = self.ended.is_set()  # read before the lines: a line added meanwhile is still seen
            value = predicate(list(self.lines))
            if not value and ended:
                raise AssertionError(f"{what or 'the expected output'}: the stream ended without it:\n"
                                     + "".join(self.lines[-20:]))
            return value
        return wait_for(check, timeout_s, what=lambda: f"{what or 'the expected output'} (last lines: "
                        f"{''.join(self.lines[-5:])!r})")

    def text(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        """Everything, once the stream has ended (the child exited)."""
        wait_for(self.ended.is_set, timeout_s, what="the end of the child's output")
        return "".join(self.lines)
