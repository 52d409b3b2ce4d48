"""The port a test or a benchmark gives its server (kiosk.tools.benchkit ``free_port``): outside the kernel's
ephemeral range, in a block of its own per pytest-xdist worker, never the same twice in one process. Two tests on
two workers once met on one port: one from `bind(0)` was taken before its server bound it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from kiosk.tools import benchkit


def _ports(worker: str, count: int) -> list[int]:
    code = f"from kiosk.tools.benchkit import free_port\nprint([free_port() for _ in range({count})])"
    env = {"PATH": "/usr/bin:/bin", "PYTEST_XDIST_WORKER": worker} if worker else {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=benchkit.__file__.rsplit("/kiosk/", 1)[0])
    return eval(out.stdout)  # noqa: S307 - a list of ints printed by the line above


def test_each_worker_has_its_own_ports_below_the_ephemeral_range_none_handed_twice() -> None:
    low = benchkit._ephemeral_low()
    seen = {worker: _ports(worker, 40) for worker in ("gw0", "gw1", "gw7", "")}
    for worker, ports in seen.items():
        assert len(set(ports)) == len(ports), worker
        assert all(benchkit.PORT_FLOOR <= port < low for port in ports), (worker, ports)
    for a in seen:
        for b in seen:
            if a < b:
                assert not set(seen[a]) & set(seen[b]), (a, b)


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    size = 100  # blocks of 100 ports, so the test can hold a whole one
    monkeypatch.setattr(benchkit, "_ephemeral_low", lambda: benchkit.PORT_FLOOR + size * benchkit.PORT_BLOCKS)
    monkeypatch.setattr(benchkit, "_handed_out", set())
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    start = benchkit.PORT_FLOOR + 5 * size
    held = []
    try:
        for port in range(start, start + size):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # held by another process already
                sock.close()
                continue
            held.append(sock)
        assert held, "some port of the block is free"
        left = held.pop()
        port = left.getsockname()[1]
        left.close()
        assert benchkit.free_port() == port, "the one port of the block nobody holds"
        other = benchkit.free_port()  # the block is full now: a port the kernel picks
        assert not start <= other < start + size
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", other))
    finally:
        for sock in held:
            sock.close()
