"""Every dependency `make venv` installs has a wheel for a Raspberry Pi (Linux aarch64, CPython 3.11).

A Pi that meets a source distribution compiles it for many minutes, or fails for want of a compiler
and headers. pip resolves the pinned set (setup.cfg's requirements and the hub and dev extras, with
their own dependencies, under constraints.txt) for the Pi's platform with binary wheels only: any
package without a wheel for it fails the resolution and is named. `--dry-run --report` is
`pip download` without writing 200 MB of wheels: pip reads the wheels' metadata from the index (and
its cache), so a re-run is quick. Skipped, with the reason, only when the package index cannot be
reached. Markers in the requirements are evaluated by pip for this machine, not the Pi.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

# Raspberry Pi OS bookworm has glibc 2.36: every manylinux tag up to it (pip does not expand them).
PI_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)))
PI_PYTHON = "3.11"
NO_DEPS = ("insightface",)  # installed with --no-deps by `make venv` (its metadata asks for GUI OpenCV)
EXTRAS = ("hub", "dev")  # what `make venv` installs
OFFLINE = re.compile(r"Failed to establish a new connection|Temporary failure in name resolution|"
                     r"Network is unreachable|Max retries exceeded|ConnectTimeout|Could not fetch URL", re.I)
PIP_TIMEOUT_S = 900
# Packages published as source only, with how a Pi gets them instead (README, Installing on Raspberry Pi OS).
SOURCE_ONLY = {"evdev": "a C extension against the kernel's input headers: on Raspberry Pi OS "
                        "`apt install python3-evdev` and a venv made with SYSTEM_SITE_PACKAGES=1"}


def _requirements() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    text = cfg["options"]["install_requires"]
    for extra in EXTRAS:
        text += "\n" + cfg["options.extras_require"][extra]
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return sorted({line for line in lines if line and re.split(r"[<>=!~;\[ ]", line)[0] not in SOURCE_ONLY})


def _pinned(name: str) -> str:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if re.match(rf"{re.escape(name)}\s*==", line, re.I):
            return line.strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def _resolve(tmp_path: Path, requirements: list[str], deps: bool) -> list[str]:
    """The wheel file names pip picks for the Pi, or a failure naming what has none."""
    report = tmp_path / f"report-{'deps' if deps else 'nodeps'}.json"
    args = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
            "--only-binary=:all:", "--python-version", PI_PYTHON, "--implementation", "cp", "--abi", "cp311",
            "--target", str(tmp_path / "target"), "--report", str(report), "--timeout", "30", "--retries", "1",
            "-c", str(REPO / "constraints.txt"), *[f"--platform={p}" for p in PI_PLATFORMS]]
    if not deps:
        args.append("--no-deps")
    proc = subprocess.run([*args, *requirements], capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if proc.returncode != 0:
        if OFFLINE.search(proc.stderr) and "No matching distribution" not in proc.stderr:
            pytest.skip(f"the package index cannot be reached: {OFFLINE.search(proc.stderr).group(0)}")
        errors = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("WARNING"))
        pytest.fail(f"a dependency has no wheel for Linux aarch64 / CPython {PI_PYTHON} "
                    f"(pip says it cannot install it):\n{errors[-3000:]}")
    return [item["download_info"]["url"].rsplit("/", 1)[-1] for item in json.loads(report.read_text())["install"]]


@pytest.mark.timeout(PIP_TIMEOUT_S + 60)
def test_every_dependency_has_a_pi_wheel(tmp_path: Path) -> None:
    wheels = _resolve(tmp_path, _requirements(), deps=True)
    wheels += _resolve(tmp_path, [_pinned(name) for name in NO_DEPS], deps=False)
    assert wheels and all(w.endswith(".whl") for w in wheels), wheels
    native = [w for w in wheels if not w.endswith("-any.whl")]
    assert all("aarch64" in w.rsplit("-", 1)[-1] for w in native), native
    names = {re.split(r"-\d", w, maxsplit=1)[0].lower().replace("_", "-") for w in wheels}
    for requirement in (*_requirements(), *NO_DEPS):
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in names, f"{name} was not resolved for the Pi"
