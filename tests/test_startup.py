"""What a kiosk process does while it starts (kiosk.base.startup, kiosk.cli.util): the garbage collector paused
until the command's own code starts (the daemon: until READY), and pydantic's plugin loader stood in for while
every plugin is off, so no importlib.metadata. `kiosk bench startup` prints what they save."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, run_kiosk

# Runs the real `kiosk` entry point in this process, then prints what the test asks about.
MAIN_PROBE = """
import gc, sys
from kiosk.commands import main
sys.argv = ["kiosk", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
loader = sys.modules.get("pydantic.plugin._loader")
print(repr({"code": code, "gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
            "metadata": "importlib.metadata" in sys.modules, "loader": type(loader).__name__,
            "pydantic_loader": getattr(loader, "__file__", None) is not None}))
"""


def _probe(*args: str, env: dict | None = None) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", MAIN_PROBE, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=120)
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def test_config_check_reads_no_package_metadata_and_ends_with_the_collector_on(kiosk_home: Path) -> None:
    """`kiosk config check` validates with pydantic without its plugin loader's importlib.metadata (every plugin
    is off: the stand-in answers as pydantic would), and the collector paused for the imports is on again."""
    out, text = _probe("config", "check", "--config", str(kiosk_home),
                       env={"PYDANTIC_DISABLE_PLUGINS": "__all__"})
    assert out["code"] in (None, 0), text
    assert f"{kiosk_home}: OK" in text
    assert out["metadata"] is False and out["loader"] == "_PydanticPluginsOff"
    assert out["gc_enabled"] is True and out["frozen"] > 0


def test_config_check_still_reports_every_problem(tmp_path: Path, kiosk_home: Path) -> None:
    """The same validation as before: each problem of a file on its own line, exit 1."""
    bad = tmp_path / "bad.toml"
    bad.write_text(kiosk_home.read_text().replace('timezone = "UTC"', 'timezone = "Mars/Olympus"')
                   + "\n[punch]\ndebounce_s = -5\nmystery = 1\n")
    out, text = _probe("config", "check", "--config", str(bad))
    assert out["code"] == 1
    assert "device.timezone = 'Mars/Olympus': unknown time zone" in text
    assert "punch.debounce_s = -5" in text
    assert "punch.mystery = 1: unknown key" in text
    assert "3 problem(s)" in text
    assert out["metadata"] is False


def test_plugins_named_in_the_environment_go_through_pydantic_s_own_loader(kiosk_home: Path) -> None:
    """PYDANTIC_DISABLE_PLUGINS naming plugins (not all of them off): pydantic's own loader takes over and
    looks for plugins in the installed packages' metadata, as without the stand-in."""
    out, text = _probe("config", "check", "--config", str(kiosk_home),
                       env={"PYDANTIC_DISABLE_PLUGINS": "some_plugin"})
    assert out["code"] in (None, 0), text
    assert out["metadata"] is True and out["pydantic_loader"] is True


STARTUP_PROBE = """
import gc
from kiosk.base.startup import gc_paused, pause_gc, resume_gc
resume_gc()
untouched = (gc.isenabled(), gc.get_freeze_count())
pause_gc()
paused = (gc.isenabled(), gc_paused())
resume_gc()
print(repr({"untouched": untouched, "paused": paused, "resumed": (gc.isenabled(), gc_paused()),
            "frozen": gc.get_freeze_count() > 0}))
"""


def test_only_a_pause_made_at_the_start_is_resumed() -> None:
    """A process that never paused (the hub, tests) keeps its collector untouched, nothing frozen; a pause is
    resumed with what was alive frozen."""
    proc = subprocess.run([sys.executable, "-c", STARTUP_PROBE], capture_output=True, text=True, cwd=REPO,
                          check=True, timeout=60)
    out = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert out["untouched"] == (True, 0)
    assert out["paused"] == (False, True)
    assert out["resumed"] == (True, False) and out["frozen"]


DAEMON_PROBE = """
import gc, sys, threading, time
from kiosk.base.events import EventKind
from kiosk.base.startup import pause_gc
from kiosk.config import load_config
from kiosk.runtime.daemon import KioskDaemon
pause_gc()
daemon = KioskDaemon(load_config(sys.argv[1], ["camera.source=''", "ui.enabled=false"]))
ready = threading.Event()
daemon.bus.subscribe(lambda event: event.kind is EventKind.READY and ready.set())
before = gc.isenabled()
thread = threading.Thread(target=daemon.run)
thread.start()
ready.wait(120)
deadline = time.monotonic() + 60
while not gc.isenabled() and time.monotonic() < deadline:
    time.sleep(0.01)
after = (gc.isenabled(), gc.get_freeze_count() > 0)
daemon.stop_event.set()
thread.join(60)
print(repr({"ready": ready.is_set(), "before": before, "after": after}))
"""


def test_the_daemon_resumes_the_collector_at_ready(kiosk_home: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", DAEMON_PROBE, str(kiosk_home)], capture_output=True, text=True,
                          cwd=REPO, check=True, timeout=180)
    out = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert out == {"ready": True, "before": False, "after": (True, True)}, proc.stderr


def test_a_punch_and_db_verify_start_without_numpy(kiosk_home: Path, invoke) -> None:  # noqa: ANN001 - fixture
    """The store loads numpy only where templates are read or written (kiosk.store.roster, .enrolments)."""
    from test_docs import heavy_modules_after
    assert invoke("employee", "add", "E1", "--name", "Ann Lee", "--config", str(kiosk_home)).exit_code == 0
    punched = run_kiosk("punch", "--employee", "E1", "--note", "test", "--yes", "--config", str(kiosk_home))
    assert punched.returncode == 0, punched.stderr
    for args in (("punch", "--employee", "E1", "--note", "test", "--yes"), ("db", "verify")):
        assert "numpy" not in heavy_modules_after(*args, "--config", str(kiosk_home)), args


def test_bench_startup_reports_every_figure_and_each_process_succeeded() -> None:
    """`kiosk bench startup` on a small store, one round: every command it times ran (a failed child would
    stop the bench with its message) and each figure is a positive CPU and wall time."""
    import json
    proc = run_kiosk("bench", "startup", "--punches", "50", "--verified", "10", "--rounds", "1", "--verify-rounds",
                     "1", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["punches"] == 50 and result["verified"] == 10 and list(result["trees"]) == ["this"]
    figures = result["figures"]["this"]
    assert set(figures) == {"python_click_floor", "help", "hub_help", "config_check_first", "ready_first",
                            "config_check", "ready", "punch", "db_verify"}
    for name, figure in figures.items():
        for measure in ("wall_s", "cpu_s"):
            assert 0 < figure[measure]["min"] <= figure[measure]["median"] <= figure[measure]["max"], (name, measure)
    assert figures["ready"]["cpu_s"]["median"] > figures["python_click_floor"]["cpu_s"]["median"]
