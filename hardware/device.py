"""What every device shares: a state enum with a reason, one stop event, a named thread, a queue."""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hardware.reasons import Reason

log = logging.getLogger(__name__)

T = TypeVar("T")
JOIN_TIMEOUT_S = 5.0


class DeviceState(enum.Enum):
    """Observable state of one device; the screen and `kiosk hw probe` show it with its reason."""

    OFF = "off"                    # not configured: the kiosk runs without it
    STOPPED = "stopped"            # configured, not started (or stopped)
    STARTING = "starting"          # opening; no verdict yet
    RUNNING = "running"            # delivering (frames, a port that is open, a fresh fix)
    NO_FIX = "no_fix"              # GPS receiver talking, but no usable position
    STALLED = "stalled"            # open but silent too long; being reopened
    DISCONNECTED = "disconnected"  # the device or port is gone; retried on a schedule
    ENDED = "ended"                # a file/images camera reached its last frame
    FAILED = "failed"              # cannot work until someone acts (missing library, bad source)

    @property
    def working(self) -> bool:
        """True when the device does its job (a GPS without a fix still works as hardware)."""
        return self in (DeviceState.RUNNING, DeviceState.NO_FIX)


TROUBLE = frozenset({DeviceState.STALLED, DeviceState.DISCONNECTED, DeviceState.FAILED})


@dataclass(frozen=True)
class DeviceStatus:
    """A state, why (a Reason: code and parameters), and since when (monotonic ns)."""

    device: str
    state: DeviceState
    why: Reason
    since_ns: int

    @property
    def reason(self) -> str:
        """Why, in English (log, CLI); screens translate ``why.code`` with ``why.params``."""
        return self.why.text

    def as_dict(self) -> dict:
        return {"device": self.device, "state": self.state.value, "reason": self.reason,
                "code": self.why.code, "params": dict(self.why.params)}


StatusListener = Callable[[DeviceStatus], None]


class DropOldestQueue(Generic[T]):
    """A bounded queue whose put never blocks: when full, the oldest item is dropped and counted.

    ``put_wait`` is the exception, for sources that must not lose frames (a test video): it waits
    for room or for ``stop``.
    """

    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def put_wait(self, item: T, stop: threading.Event, poll_s: float = 0.05) -> bool:
        """Append when there is room; False if ``stop`` was set first."""
        with self._cond:
            while len(self._items) >= self._maxlen:
                if stop.is_set():
                    return False
                self._cond.wait(poll_s)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout_s`` (None: forever); None on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Device:
    """Base of every device: start()/stop(), one stop event, one named thread, observable status.

    Subclasses implement ``_loop`` (runs in the thread and returns when ``self._stop`` is set) and
    may override ``_interrupt`` to unblock a read when stopping. Listeners are called from the
    device thread on every change of state or reason; they must be quick and must not raise.
    """

    kind = "device"

    def __init__(self, name: str | None = None, off_reason: str | None = None) -> None:
        """``off_reason``: the reason code when the device is not configured (state OFF)."""
        self.name = name or self.kind
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status_lock = threading.Lock()
        self._configured = off_reason is None
        state, code = (DeviceState.STOPPED, "not_started") if off_reason is None else (DeviceState.OFF, off_reason)
        self._status = DeviceStatus(self.name, state, Reason(code), time.monotonic_ns())
        self._listeners: list[StatusListener] = []

    # -- status -------------------------------------------------------------------------------
    @property
    def status(self) -> DeviceStatus:
        with self._status_lock:
            return self._status

    @property
    def state(self) -> DeviceState:
        return self.status.state

    @property
    def reason(self) -> str:
        return self.status.reason

    @property
    def configured(self) -> bool:
        """False for a device the config leaves out: it stays OFF and delivers nothing."""
        return self._configured

    def describe(self) -> str:
        """Where the device is (port, source) for tables and logs."""
        return self.name

    def add_listener(self, listener: StatusListener) -> None:
        """Call ``listener(status)`` on each change (from the device thread)."""
        self._listeners.append(listener)

    def _set_state(self, state: DeviceState, code: str, **params: Any) -> None:
        """Enter ``state`` because of reason ``code`` (hardware.reasons.REASONS) with its parameters."""
        why = Reason(code, params)
        with self._status_lock:
            if self._status.state == state and self._status.why == why:
                return
            previous = self._status.state
            self._status = status = DeviceStatus(self.name, state, why, time.monotonic_ns())
        level = logging.WARNING if state in TROUBLE else logging.INFO
        if previous == state:
            log.log(level, "%s: still %s (%s)", self.name, state.value, status.reason)
        else:
            log.log(level, "%s: %s -> %s (%s)", self.name, previous.value, state.value, status.reason)
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # a broken listener must not take the device down
                log.exception("%s: status listener failed", self.name)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the device thread (no-op when already running or not configured)."""
        if not self._configured or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._set_state(DeviceState.STARTING, "opening", what=self.describe())
        self._thread = threading.Thread(target=self._run, name=f"hw-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Stop: 1. set the stop event, 2. unblock any read, 3. join the thread, 4. state STOPPED."""
        if not self._configured:
            return
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("%s: thread did not stop within %.1f s", self.name, timeout_s)
        self._thread = None
        if self.state not in (DeviceState.OFF, DeviceState.FAILED, DeviceState.ENDED):
            self._set_state(DeviceState.STOPPED, "stopped")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_for(self, predicate: Callable[[DeviceStatus], bool], timeout_s: float) -> bool:
        """Poll until ``predicate(status)`` holds or ``timeout_s`` passes (for tools and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.status):
                return True
            time.sleep(0.01)
        return predicate(self.status)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # the last line of defence: say what broke, do not die silently
            log.exception("%s: device thread crashed", self.name)
            self._set_state(DeviceState.FAILED, "internal_error", error=f"{type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Unblock a blocking read so the thread sees the stop event (override when needed)."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
