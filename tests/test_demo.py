"""`kiosk demo` (what `make demo` runs) works on a fresh machine's embedded defaults."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import run_kiosk
from kiosk.config import load_config
from kiosk.store import open_store

DEMO_TIMEOUT_S = 300


def _run_on_a_terminal(args: list[str], until: str, log: Path) -> tuple[subprocess.Popen, int, str]:
    """`python -m kiosk ARGS` with a pseudo-terminal as stdin and stdout (as `make demo` typed by a person);
    returns the process, the terminal (the caller closes it) and what it printed up to ``until``."""
    master, slave = pty.openpty()
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kiosk", *args], stdin=slave, stdout=slave, stderr=err)
    os.close(slave)
    out, deadline = b"", time.monotonic() + DEMO_TIMEOUT_S
    while until.encode() not in out:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
        if proc.poll() is not None and not ready or time.monotonic() > deadline:
            break
    return proc, master, out.decode(errors="replace").replace("\r\n", "\n")


def test_demo_end_to_end_then_the_console_until_ctrl_c(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    proc, terminal, out = _run_on_a_terminal(["demo", "--keep", str(keep)], "press Ctrl-C", tmp_path / "demo.log")
    try:
        assert "press Ctrl-C" in out, out[-3000:] + (tmp_path / "demo.log").read_text()[-3000:]
        console = re.search(r"^console: (http://127\.0\.0\.1:\d+)/  sign in as (\S+) / (\S+)$", out, re.M)
        assert console, out[-2000:]
        url, user, password = console.groups()
        with httpx.Client(base_url=url, timeout=30) as hr:
            assert hr.post("/v1/hr/session", json={"username": user, "password": password}).status_code == 200
            at_hub = [json.loads(line) for line in hr.get("/v1/hr/punches").text.splitlines()]
            page = hr.get("/punches")
            assert page.status_code == 200 and all(p["employee_id"] in page.text for p in at_hub)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        os.close(terminal)
    log = (tmp_path / "demo.log").read_text()
    assert code == 0, log[-3000:]
    # The quick start prints no Python warning (the hub's first request on each route once printed pydantic's
    # false alias warning: sync/hub/app.py).
    assert "Warning" not in out and "Warning" not in log, (out + log)[-3000:]
    enrolled = re.findall(r"^  enrolled (E\d{3}) ", out, re.M)
    assert enrolled == ["E001", "E002", "E003", "E004"]  # DEMO_PEOPLE, from the photos in the wheels
    # Its camera is lossless (every frame is looked at), so the outcome does not depend on the machine.
    punched = re.findall(r"^(E\d{3}) .* punched .* at \d\d:\d\d", out, re.M)
    assert punched == enrolled
    assert len(re.findall(r"^stranger .*not recognised - use your card", out, re.M)) == 1
    assert len(re.findall(r"^E001 .* again\s+already punched at \d\d:\d\d", out, re.M)) == 1
    assert "stored punches: 4; hash chain intact" in out
    assert "pushed 4 punch(es); the hub holds 4, 0 left to send" in out and len(at_hub) == 4
    with open_store(load_config(keep / "kiosk.toml")) as store:
        assert [(p.employee_id, p.method) for p in store.punches.iter()] == [(e, "face") for e in enrolled]


def test_bench_walkup_reports_every_figure() -> None:
    """The benchmark's contract (its JSON keys) holds on a short run; the figures themselves are not judged."""
    import json

    # 5 fps: on a loaded machine the daemon still sees enough frames of each walk-up to decide.
    from kiosk.tools.bench_walkup import BLINK_CLIP
    from kiosk.tools.scenes import default_videos_dir
    videos = default_videos_dir()
    clip = ["--clip", str(videos / BLINK_CLIP)] if videos is not None else ["--no-clips"]
    proc = run_kiosk("bench", "walkup", "--walkups", "2", "--people", "2", "--idle-s", "1", "--fps", "5",
                     "--rounds", "1", *clip, "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["punched"] == 2 and result["already_punched"] == 0
    assert {"p50", "p95", "min", "max"} <= set(result["latency_ms"])
    assert result["idle_cpu_s_per_min"] > 0 and result["idle_plain_cpu_s_per_min"] > 0
    assert result["daemon_peak_rss_mb"] > 50
    if videos is not None:
        # The blinking person is punched with the shipped defaults (liveness on), after the blink.
        (played,) = result["clips"]
        # Never before the blink; both ends are known to a frame of the paced clip (a loaded machine reads
        # the first face frame late), hence the few frames of slack.
        assert played["outcome"] == "punched" and played["ms_after_blink"] > -100
