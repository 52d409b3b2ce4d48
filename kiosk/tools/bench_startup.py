"""`kiosk bench startup`: what a command and a daemon start cost, on a store that has grown big.

Each figure is a real child process (`python -m kiosk ...`) timed for wall and CPU (its rusage):
`kiosk --help` beside the floor of Python + click, `kiosk hub --help`, `kiosk config check`, `kiosk run`
from spawn to READY, one `kiosk punch`, and `kiosk db verify`. The store is first filled with ``--punches``
punches through the real append path, all but the first ``--verified`` of them on an unverified
clock: a kiosk that was offline for weeks, where anything that walks the punches shows. With
``--compare-with DIR`` the same steps also run from another source tree of the kiosk (say, the
previous release) on its own store, filled the same way by its own code, in turns with this one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from kiosk.cli.util import echo_json
from kiosk.tools.benchkit import fmt_spread, free_port, machine, machine_line, rounds_option, spread

log = logging.getLogger(__name__)

THIS_TREE = Path(__file__).resolve().parents[2]
FILL_CHUNK = 5000
READY_TIMEOUT_S = 300.0
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
# Runs in the tree being measured, so it uses only store calls every version of the kiosk has.
FILL_SCRIPT = f"""
import sys
from kiosk.config import load_config
from kiosk.store.database import open_store
from kiosk.store.punches import PunchDraft
config, count, verified = load_config(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with open_store(config) as store:
    store.roster.add("E1", "Bench Person", exist_ok=True)
    for start in range(0, count, {FILL_CHUNK}):
        with store.atomic():
            for i in range(start, min(count, start + {FILL_CHUNK})):
                store.punches.append(PunchDraft("E1", "card", "verified" if i < verified else "unverified"))
"""


def _env(tree: Path) -> dict[str, Any]:
    """Run a child from ``tree``: its PYTHONPATH, and its folder as the working directory (`python -m`
    and `-c` put the working directory first on the path). Bytecode is cached (in a folder of the run, see
    ``_compile``) even where PYTHONDONTWRITEBYTECODE is set, as an installed kiosk has its .pyc files."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {"env": {**env, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": PYCACHE[tree]}, "cwd": str(tree)}


PYCACHE: dict[Path, str] = {}


def _compile(tree: Path, folder: Path) -> None:
    """Byte-compile ``tree``'s packages into ``folder`` first, so no timed step pays for compiling."""
    PYCACHE[tree] = str(folder)
    packages = [str(tree / name) for name in ("kiosk", "sync", "hardware", "enrollment") if (tree / name).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], **_env(tree), check=True,
                   capture_output=True)


def _child(tree: Path, *args: str) -> tuple[float, float]:
    """(wall s, CPU s) of one child process, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], **_env(tree), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise click.ClickException(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-800:]}")
    proc.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime


def _cpu_s(pid: int) -> float:
    """utime + stime of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S


def _ready(tree: Path, config: Path, camera: Path) -> tuple[float, float]:
    """`kiosk run` from spawn to its READY event: (wall s, CPU s of all its threads); then stopped."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run", "--config", str(config),
                             "--set", f"camera.source='images:{camera}?loop=1'", "--set", "events.stdout_json=true",
                             "--set", "log.level='WARNING'", "--set", "ui.bind='127.0.0.1'",
                             "--set", f"ui.port={port}"],
                            **_env(tree), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if '"ready"' in line:
                return time.perf_counter() - start, _cpu_s(proc.pid)
            if time.perf_counter() - start > READY_TIMEOUT_S:
                break
        raise click.ClickException(f"`kiosk run` from {tree} never became ready")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _home(tree: Path, folder: Path, punches: int, verified: int) -> Path:
    subprocess.run([sys.executable, "-m", "kiosk", "init", str(folder)], **_env(tree), check=True,
                   capture_output=True)
    config = folder / "kiosk.toml"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", FILL_SCRIPT, str(config), str(punches), str(verified)],
                   **_env(tree), check=True, capture_output=True)
    log.info("%s: %d punches stored in %.0f s", folder.name, punches, time.perf_counter() - start)
    return config


KIOSK = ("-m", "kiosk")


def _steps(tree: Path, config: Path, camera: Path, verify: bool) -> dict[str, tuple[float, float]]:
    kiosk = KIOSK
    out = {
        "python_click_floor": _child(tree, "-c", "import click"),
        "help": _child(tree, *kiosk, "--help"),
        "hub_help": _child(tree, *kiosk, "hub", "--help"),
        "config_check": _child(tree, *kiosk, "config", "check", "--config", str(config)),
        "ready": _ready(tree, config, camera),
        "punch": _child(tree, *kiosk, "punch", "--employee", "E1", "--note", "bench", "--yes", "--config", str(config)),
    }
    if verify:
        out["db_verify"] = _child(tree, *kiosk, "db", "verify", "--config", str(config))
    return out


def run_startup(punches: int, verified: int, rounds: int, verify_rounds: int, compare: Path | None) -> dict:
    from kiosk.tools.scenes import write_scene
    trees = {"this": THIS_TREE, **({"compare": compare.resolve()} if compare else {})}
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        camera = Path(tmp) / "camera"
        for name, tree in trees.items():
            _compile(tree, Path(tmp) / f"pycache-{name}")
        write_scene(camera, [(None, 5, "empty")])
        homes = {name: _home(tree, Path(tmp) / name, punches, verified) for name, tree in trees.items()}
        figures: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in trees}
        names = list(trees)
        for name in names:  # a new home's first start: nothing remembered or kept yet (kiosk.face.pack, .sessions)
            figures[name]["config_check_first"] = [_child(trees[name], *KIOSK, "config", "check", "--config",
                                                          str(homes[name]))]
            figures[name]["ready_first"] = [_ready(trees[name], homes[name], camera)]
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                for step, value in _steps(trees[name], homes[name], camera, r < verify_rounds).items():
                    figures[name].setdefault(step, []).append(value)
    return {
        "machine": machine(), "punches": punches, "verified": verified, "rounds": rounds,
        "verify_rounds": min(verify_rounds, rounds),
        "trees": {name: str(tree) for name, tree in trees.items()},
        "figures": {name: {step: {"wall_s": spread([w for w, _ in values]), "cpu_s": spread([c for _, c in values])}
                           for step, values in steps.items()} for name, steps in figures.items()},
    }


STEP_NAMES = {
    "python_click_floor": "python + import click (floor)",
    "help": "kiosk --help",
    "hub_help": "kiosk hub --help",
    "config_check_first": "kiosk config check, new home",
    "ready_first": "kiosk run: first start to READY",
    "config_check": "kiosk config check",
    "ready": "kiosk run: spawn to READY",
    "punch": "one kiosk punch",
    "db_verify": "kiosk db verify",
}


def _print(r: dict[str, Any]) -> None:
    click.echo(machine_line(r["machine"]))
    click.echo(f"store: {r['punches']} punches, the first {r['verified']} on a verified clock; {r['rounds']} rounds "
               f"in turns (db verify: {r['verify_rounds']}); child processes, min/median/max; first, once per home "
               "before the rounds: config check and a start with nothing remembered or kept yet (the recogniser's "
               "model id hashed, the models' optimised graphs written):")
    for name, steps in r["figures"].items():
        click.echo(f"  {name} ({r['trees'][name]}):")
        for step, fig in steps.items():
            click.echo(f"    {STEP_NAMES[step]:32} CPU {fmt_spread(fig['cpu_s'], ' s', 3)}   "
                       f"wall {fmt_spread(fig['wall_s'], ' s', 3)}")


@click.command("startup")
@click.option("--punches", default=1_000_000, show_default=True, type=click.IntRange(0, 100_000_000),
              help="Punches in the store before timing (filled through the real append path).")
@click.option("--verified", default=1000, show_default=True, type=click.IntRange(0, 100_000_000),
              help="How many of them (the oldest) were stamped on a verified clock; the rest unverified.")
@rounds_option
@click.option("--verify-rounds", default=1, show_default=True, type=click.IntRange(0, 1000),
              help="Rounds that also run `kiosk db verify` (it reads every punch: slow on a big store).")
@click.option("--compare-with", "compare", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Another source tree of the kiosk (e.g. a checkout of the previous release) to run the same "
              "steps from, in turns, on its own store filled by its own code.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_startup(punches: int, verified: int, rounds: int, verify_rounds: int, compare: Path | None,
                  as_json: bool) -> None:
    """CPU and wall time of `kiosk --help`, `config check`, start to READY, one `kiosk punch` and `db verify`,
    with a big store."""
    result = run_startup(punches, min(verified, punches), rounds, verify_rounds, compare)
    if as_json:
        echo_json(result)
    else:
        _print(result)
