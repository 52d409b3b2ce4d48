"""What every `kiosk bench` shares: the machine line, interleaved rounds, min/median/max, one-core mode.

A figure is honest when the contender and its plain alternative run on the same data, the same
threads and the same machine moments: ``interleave`` runs them in turns (the first to run changes
every round), ``spread`` gives min/median/max of the rounds, and ``ratio_spread`` the per-round
ratio. ``pin_cores`` runs the process on N cores only (``os.sched_setaffinity``), so a Pi-class
budget can be read on any machine from the CPU time each stage costs.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

log = logging.getLogger(__name__)

DEFAULT_ROUNDS = 5


PORT_FLOOR = 20000  # free_port's ports: from here to below the kernel's ephemeral range
PORT_BLOCKS = 9  # a block of them for each of up to 8 pytest-xdist workers (gw0..gw7), and one for anything else
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    """The lowest port the kernel picks for an outgoing connection (Linux: 32768 unless changed)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a benchmark or a test starts (a port another process holds
    would make it fail or, for `kiosk run`'s screen, look cheaper than it is). Not one the kernel gives out: a
    port from ``bind(0)`` is in the ephemeral range, where an outgoing connection's source port or another
    process's ``bind(0)`` can take it before the server binds it (seen with tests on two pytest-xdist workers).
    So it comes from below that range, from a block of its own for each xdist worker, never the same twice in
    one process; ``bind(0)`` only when there is no room below the range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker[:2] == "gw" and worker[2:].isdigit() else PORT_BLOCKS - 1
    block = (_ephemeral_low() - PORT_FLOOR) // PORT_BLOCKS
    if block >= 100 and index < PORT_BLOCKS:
        start = PORT_FLOOR + index * block
        ports = list(range(start, start + block))
        random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(ports)
        for port in ports:
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), or the platform's best guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores usable, load averages."""
    load = [round(x, 2) for x in os.getloadavg()]
    return {"cpu": cpu_model(), "arch": platform.machine(), "cpus": os.cpu_count(),
            "cores_used": len(os.sched_getaffinity(0)), "load_1_5_15": load, "python": platform.python_version()}


def machine_line(info: dict[str, Any]) -> str:
    load = info["load_1_5_15"]
    return (f"machine: {info['cpu']} ({info['arch']}), {info['cores_used']} of {info['cpus']} cores used, "
            f"load {load[0]} / {load[1]} / {load[2]} (1/5/15 min), Python {info['python']}")


def spread(values: list[float], digits: int = 3) -> dict[str, float | None]:
    """min / median / max of per-round figures."""
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def ratio_spread(numerators: list[float], denominators: list[float], digits: int = 3) -> dict[str, float | None]:
    """min / median / max of the per-round ratio numerator / denominator (rounds paired in order)."""
    return spread([a / b for a, b in zip(numerators, denominators, strict=True) if b], digits)


def fmt_spread(s: dict[str, float | None], unit: str = "", digits: int = 2) -> str:
    if s["median"] is None:
        return "n/a"
    return (f"median {s['median']:.{digits}f}{unit} (min {s['min']:.{digits}f}, "
            f"max {s['max']:.{digits}f})")


def interleave(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[Any]]:
    """Run each contender once per round, in turns; the one that goes first rotates every round."""
    names = list(contenders)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(contenders[name]())
    return results


class StageClock:
    """Wall and process-CPU milliseconds of one piece of work."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> tuple[float, float]:
        return (time.perf_counter() - self.wall) * 1000, (time.process_time() - self.cpu) * 1000


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(value, wall ms, process CPU ms) of one call."""
    clock = StageClock()
    value = fn()
    wall, cpu = clock.stop()
    return value, wall, cpu


def pin_cores(cores: int | None) -> list[int] | None:
    """Keep this process (and the threads it starts from now on) on the first ``cores`` usable CPUs."""
    if not cores:
        return None
    usable = sorted(os.sched_getaffinity(0))
    if cores > len(usable):
        raise click.BadParameter(f"only {len(usable)} core(s) are usable here", param_hint="--cores")
    chosen = usable[:cores]
    os.sched_setaffinity(0, chosen)
    log.info("pinned to core(s) %s", chosen)
    return chosen


def cores_overrides(cores: int | None) -> list[str]:
    """Config overrides that match the model threads to the pinned cores."""
    return [f"face.threads={cores}"] if cores else []


def cores_option(func: Callable) -> Callable:
    """--cores N: run pinned to N cores with N model threads (1 shows a Pi-class budget)."""
    return click.option("--cores", type=click.IntRange(1, 256), default=None,
                        help="Run pinned to this many cores (os.sched_setaffinity) with face.threads set to "
                        "match; 1 shows the CPU time one slow core (Pi-class) would need per stage.")(func)


def rounds_option(func: Callable) -> Callable:
    return click.option("--rounds", default=DEFAULT_ROUNDS, show_default=True, type=click.IntRange(1, 1000),
                        help="Interleaved rounds of the contender and its plain alternative "
                        "(min/median/max are over rounds).")(func)
