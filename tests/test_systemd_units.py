"""The unit files are valid systemd units (systemd-analyze verify) with the promised hardening."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, skip_or_fail

UNITS = sorted((REPO / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        skip_or_fail("systemd-analyze is not installed (Debian package systemd)")
    # Point ExecStart at this checkout's venv so the binary exists, as it does on a kiosk.
    text = unit.read_text().replace("/opt/kiosk/.venv/bin/", str(Path(sys.executable).parent) + "/")
    copy = tmp_path / unit.name
    copy.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    problems = [line for line in proc.stderr.splitlines() if unit.name in line or "Unknown" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_kiosk_unit_hardening() -> None:
    text = (REPO / "systemd/kiosk.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "StateDirectory=kiosk", "NoNewPrivileges=yes",
                 "LoadCredential=kiosk-db-key:", "DeviceAllow=char-video4linux", "DeviceAllow=char-ttyUSB",
                 "Restart=always"):
        assert line in text
