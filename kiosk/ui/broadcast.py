"""Fan-out of what the screen must show: events published on any thread reach every connected page
(server-sent events) through one asyncio queue per connection, on the web server's event loop."""

from __future__ import annotations

import asyncio
import logging
import threading

log = logging.getLogger(__name__)

CLIENT_QUEUE_MAX = 64


class Broadcaster:
    """Thread-safe ``publish(message)``; each page's stream reads from its own queue."""

    def __init__(self) -> None:
        self._clients: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._lock = threading.Lock()

    def connect(self) -> asyncio.Queue:
        """A queue for one page (call on the event loop)."""
        queue: asyncio.Queue = asyncio.Queue(CLIENT_QUEUE_MAX)
        with self._lock:
            self._clients.append((asyncio.get_running_loop(), queue))
        return queue

    def disconnect(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._clients = [(loop, q) for loop, q in self._clients if q is not queue]

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, message: dict) -> None:
        with self._lock:
            clients = list(self._clients)
        for loop, queue in clients:
            try:
                loop.call_soon_threadsafe(_offer, queue, message)
            except RuntimeError:  # the loop is closed: the server is stopping
                self.disconnect(queue)


def _offer(queue: asyncio.Queue, message: dict) -> None:
    # A page that stopped reading loses its oldest messages, never blocks the others.
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(message)
