"""The screen off loopback (`ui.bind = 0.0.0.0`): refused unless `ui.allow_remote = true`, and then the
camera preview and the live events (names) need the admin session from any machine but the kiosk itself.
Through the real daemon's screen server; the "other machine" is this machine's own network address, so
nothing leaves the host."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from ui_support import Daemon, free_port

from conftest import run_kiosk, skip_or_fail

PIN = "246802"


def own_network_address() -> str:
    """This machine's address on its outgoing interface (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
        except OSError:
            skip_or_fail("this machine has no network address besides loopback")
        address = sock.getsockname()[0]
    if address.startswith("127."):
        skip_or_fail("this machine has no network address besides loopback")
    return address


@pytest.mark.parametrize(("sets", "ok"), [
    (["ui.bind='0.0.0.0'"], False),
    (["ui.bind='192.168.1.20'"], False),
    (["ui.bind='::'"], False),
    (["ui.bind='0.0.0.0'", "ui.allow_remote=true"], True),
    (["ui.bind='127.0.0.1'"], True),
    (["ui.bind='::1'"], True),
])
def test_config_check_refuses_the_screen_off_loopback_unless_allowed(kiosk_home: Path, invoke, sets: list,
                                                                     ok: bool) -> None:
    result = invoke("config", "check", str(kiosk_home), *[a for s in sets for a in ("--set", s)])
    assert (result.exit_code == 0) is ok, result.output
    if not ok:
        assert "ui.bind" in result.output and "ui.allow_remote = true" in result.output
        assert "plain http" in result.output


def test_remote_clients_need_the_admin_session_for_preview_and_events(tmp_path: Path) -> None:
    home = tmp_path / "kiosk"
    run_kiosk("init", str(home), check=True)
    config = home / "kiosk.toml"
    run_kiosk("admin", "set-pin", "--config", str(config), "--pin-stdin", input_text=PIN + "\n", check=True)
    port = free_port()
    daemon = Daemon(config, ["ui.enabled=true", f"ui.port={port}", "ui.bind='0.0.0.0'", "ui.allow_remote=true"],
                    tmp_path)
    daemon.start(f"http://127.0.0.1:{port}/")
    remote_url = f"http://{own_network_address()}:{port}/"
    try:
        with httpx.Client(base_url=remote_url, timeout=10) as remote, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}/", timeout=10) as local:
            assert remote.get("/healthz").status_code == 200  # really served to the network
            for path in ("/api/preview.jpg", "/api/preview.mjpg", "/api/events"):
                refused = remote.get(path)
                assert refused.status_code == 401 and refused.json()["error"] == "not_logged_in", path
            assert local.get("/api/preview.jpg").status_code in (200, 204)  # the touchscreen itself
            with local.stream("GET", "/api/events") as stream:
                assert stream.status_code == 200 and next(stream.iter_lines()).startswith("data: ")
            login = remote.post("/api/admin/login", json={"pin": PIN}, headers={"X-Kiosk-Admin": "1"})
            assert login.status_code == 200, login.text
            assert remote.get("/api/preview.jpg").status_code in (200, 204)
            with remote.stream("GET", "/api/events") as stream:
                assert stream.status_code == 200 and next(stream.iter_lines()).startswith("data: ")
    finally:
        assert daemon.stop() == 0, daemon.log()
