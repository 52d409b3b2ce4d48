"""Shared fixtures: kiosk homes made by the real `kiosk init`, the face photo set, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

from kiosk.commands import cli
from kiosk.config import load_config
from kiosk.store import open_store

# Fixtures of their own modules: the face engine and test photos (face_support.py); real hubs on
# SQLite/PostgreSQL and registered kiosks (sync_support.py).
pytest_plugins = ["face_support", "sync_support"]

REPO = Path(__file__).resolve().parent.parent
CONSENT_ARGS = ("--consent-taken-by", "Test Admin")
"""`kiosk enroll add|import`: the person consented in front of the admin running the command."""


def kiosk_consent():  # noqa: ANN201 - kiosk.base.consent.Consent
    """A consent taken at the kiosk, for tests that call store_enrolment directly."""
    from kiosk.base.consent import Consent
    return Consent(given_utc="2026-01-05T08:00:00.000Z", taken_by="Test Admin", path="kiosk_guided")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def skip_or_fail(reason: str) -> NoReturn:
    """A prerequisite is missing (a service, a program, the shared photos): skip on a developer's
    machine, but fail under CI (environment variable CI set), where a skip would hide untested code."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} [CI is set: a missing prerequisite fails instead of skipping]", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`pytest -n N --dist loadgroup` (make test): the tests marked ``xdist_group`` get their group's name after
    an ``@`` in their node id, which is how pytest-xdist's controller sends a group to one worker. pytest-xdist
    3.8 writes that id to ``item._nodeid``, which pytest 9.2 no longer reads (the id is ``item._id`` now), so
    without this every group would be spread over the workers. Does nothing when xdist did it already."""
    if not getattr(config.option, "loadgroup", False):  # set on an xdist worker under --dist loadgroup only
        return
    from _pytest.nodeid import NodeId
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


def _face_data_dir() -> Path:
    return Path(os.environ.get("KIOSK_FACE_DATA", REPO.parent / "shared" / "faces"))


def _video_dir() -> Path:
    return Path(os.environ.get("KIOSK_VIDEO_DATA", REPO.parent / "shared" / "videos"))


@pytest.fixture(scope="session")
def face_data() -> Path:
    """The real photo set (../shared/faces or $KIOSK_FACE_DATA); skips when absent."""
    path = _face_data_dir()
    if not (path / "MANIFEST.tsv").exists():
        skip_or_fail(f"face photo set not found at {path} (set KIOSK_FACE_DATA)")
    return path


@pytest.fixture(scope="session")
def video_data() -> Path:
    """The real face videos (../shared/videos or $KIOSK_VIDEO_DATA); skips when absent."""
    path = _video_dir()
    if not (path / "MANIFEST.tsv").exists():
        skip_or_fail(f"face videos not found at {path} (set KIOSK_VIDEO_DATA)")
    return path


def run_kiosk(*args: str, check: bool = False, timeout: float = 120, env: dict | None = None,
              input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run the real `kiosk` entry point in a child process."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=input_text)
    if check and proc.returncode != 0:
        raise AssertionError(f"kiosk {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner):
    """Invoke the CLI in-process; returns click's Result (exit_code, output, stderr)."""

    def _invoke(*args: str, **kwargs):
        return runner.invoke(cli, list(args), catch_exceptions=False, **kwargs)

    return _invoke


@pytest.fixture
def kiosk_home(tmp_path: Path, invoke) -> Path:
    """A kiosk home created by `kiosk init` (config, 0600 key file, store); returns the config path."""
    home = tmp_path / "kiosk"
    result = invoke("init", str(home))
    assert result.exit_code == 0, result.output
    return home / "kiosk.toml"


@pytest.fixture
def fresh_store(kiosk_home: Path):
    """The kiosk home's store, opened; closed after the test."""
    store = open_store(load_config(kiosk_home))
    yield store
    store.close()


class PtyDevice:
    """The device end of a real pseudo-terminal behind a stable path (like /dev/serial/by-id/...).

    The program under test opens ``path``; the test writes what the device would send. ``unplug``
    closes the pty and removes the path (a USB adapter pulled out); ``plug`` makes a new pty and
    points the same path at it (plugged back in).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.master: int | None = None
        self._slave: int | None = None
        self.plug()

    def plug(self) -> None:
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as on a UART
        self.master, self._slave = master, slave
        self.path.unlink(missing_ok=True)
        self.path.symlink_to(os.ttyname(slave))

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        self.path.unlink(missing_ok=True)
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)
        self.master = self._slave = None

    def close(self) -> None:
        if self.master is not None:
            self.unplug()


@pytest.fixture
def serial_pty(tmp_path: Path):
    """Factory: ``serial_pty("ttyUSB0")`` -> a PtyDevice whose ``path`` a reader can open."""
    made: list[PtyDevice] = []

    def _make(name: str = "ttyUSB0") -> PtyDevice:
        device = PtyDevice(tmp_path / name)
        made.append(device)
        return device

    yield _make
    for device in made:
        device.close()

