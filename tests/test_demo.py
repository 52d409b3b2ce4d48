"""`kiosk demo` (what `make demo` runs) works on a fresh machine's embedded defaults."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_kiosk
from kiosk.config import load_config
from kiosk.store import open_store


def test_demo_end_to_end(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    proc = run_kiosk("demo", "--keep", str(keep), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    enrolled = re.findall(r"^  enrolled (E\d{3}) ", out, re.M)
    assert enrolled == ["E001", "E002", "E003", "E004"]  # DEMO_PEOPLE, from the photos in the wheels
    # Its camera is lossless (every frame is looked at), so the outcome does not depend on the machine.
    punched = re.findall(r"^(E\d{3}) .* punched .* at \d\d:\d\d", out, re.M)
    assert punched == enrolled
    assert len(re.findall(r"^stranger .*not recognised - use your card", out, re.M)) == 1
    assert len(re.findall(r"^E001 .* again\s+already punched at \d\d:\d\d", out, re.M)) == 1
    assert "(nothing)" not in out
    assert "stored punches: 4; hash chain intact" in out
    assert "pushed 4 punch(es); the hub holds 4, 0 left to send" in out
    with open_store(load_config(keep / "kiosk.toml")) as store:
        assert [(p.employee_id, p.method) for p in store.punches.iter()] == [(e, "face") for e in enrolled]


def test_bench_walkup_reports_every_figure() -> None:
    """The benchmark's contract (its JSON keys) holds on a short run; the figures themselves are not judged."""
    import json
    # 5 fps: on a loaded machine the daemon still sees enough frames of each walk-up to decide.
    proc = run_kiosk("bench", "walkup", "--walkups", "2", "--people", "2", "--idle-s", "1", "--fps", "5", "--json",
                     timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["punched"] == 2
    assert {"p50", "p95", "max"} <= set(result["latency_ms"])
    assert result["idle_cpu_s_per_min"] > 0 and result["idle_plain_cpu_s_per_min"] > 0
    assert result["daemon_peak_rss_mb"] > 50
