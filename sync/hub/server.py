"""Running the hub: uvicorn in this process (one or several workers) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from kiosk.base.errors import ConfigError, KioskError
from sync.hub.app import create_app
from sync.hub.config import HubConfig, load_hub_config
from sync.hub.db import HubDb, open_hub_db
from sync.hub.faces import TemplateMaker, build_template_maker

log = logging.getLogger(__name__)

TLS_KEY_CREDENTIAL = "kiosk-hub-tls-key"
CONFIG_PATH_ENV = "KIOSK_HUB_CONFIG"
OVERRIDES_ENV = "KIOSK_HUB_SET"
STARTUP_TIMEOUT_S = 20.0


def _tls_options(config: HubConfig) -> dict[str, Any]:
    server = config.server
    if server.tls_cert_file is None:
        return {}
    key = server.tls_key_file
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if key is None and cred_dir and (Path(cred_dir) / TLS_KEY_CREDENTIAL).exists():
        key = Path(cred_dir) / TLS_KEY_CREDENTIAL
    if key is None:
        raise ConfigError("server.tls_cert_file is set but there is no private key",
                          fix=f"Set server.tls_key_file, or pass the systemd credential {TLS_KEY_CREDENTIAL}.")
    return {"ssl_certfile": str(server.tls_cert_file), "ssl_keyfile": str(key)}


def _uvicorn_config(app: Any, config: HubConfig, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_config=None, access_log=config.log.access_log, server_header=False,
                          timeout_keep_alive=30, timeout_graceful_shutdown=10, **_tls_options(config), **extra)


class HubServer(uvicorn.Server):
    """uvicorn's server that, on SIGTERM/SIGINT, first tells the app to end its live feeds (so a graceful
    stop does not wait for browsers to hang up)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        stop = getattr(getattr(self.config.app, "state", None), "stop", None)
        if stop is not None:
            stop.set()
        super().handle_exit(sig, frame)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), bound before uvicorn starts so the port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fix = ("Pick another --port, or stop what is using this one." if exc.errno == errno.EADDRINUSE else
               "Use an address of this machine for --host / server.host (0.0.0.0 for all, 127.0.0.1 for local).")
        raise KioskError(f"cannot listen on {host}:{port}: {exc.strerror}", fix=fix) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, config: HubConfig) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if config.server.tls_cert_file else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def app_from_env() -> Any:
    """uvicorn factory for worker processes: config path and overrides come from the environment."""
    config = load_hub_config(Path(os.environ[CONFIG_PATH_ENV]), json.loads(os.environ.get(OVERRIDES_ENV, "[]")))
    return create_app(config, open_hub_db(config.database), build_template_maker(config.faces))


def serve(config: HubConfig, overrides: list[str], announce: Any = print) -> None:
    """Migrate, bind, and serve until SIGTERM/SIGINT (uvicorn finishes in-flight requests first)."""
    server = config.server
    if server.workers > 1 and config.database.backend != "postgres":
        raise ConfigError("server.workers > 1 needs database.backend = 'postgres'",
                          fix="Use one worker with SQLite, or move the hub to PostgreSQL.")
    if config.connectors.frappe.enabled:
        config.connectors.frappe.token()  # refuse to start without the HRMS credentials, with the fix
    open_hub_db(config.database, migrate=True).close()
    sock = bind(server.host, server.port)
    announce(f"hub listening on {url_of(sock, config)} ({config.database.backend}, {server.workers} worker(s))")
    if server.workers == 1:
        db = open_hub_db(config.database)
        try:
            app = create_app(config, db, build_template_maker(config.faces))
            HubServer(_uvicorn_config(app, config)).run(sockets=[sock])
        finally:
            db.close()
        return
    from uvicorn.supervisors import Multiprocess
    os.environ[CONFIG_PATH_ENV] = str(Path(config._source).resolve())
    os.environ[OVERRIDES_ENV] = json.dumps(overrides)
    uv_config = _uvicorn_config("sync.hub.server:app_from_env", config, factory=True, workers=server.workers)
    Multiprocess(uv_config, sockets=[sock]).run()


class HubThread:
    """The real hub app on a real socket, served from a thread of this process (tests, benchmarks)."""

    def __init__(self, config: HubConfig, db: HubDb | None = None, maker: TemplateMaker | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.own_db = db is None
        self.db = db or open_hub_db(config.database, migrate=True)
        self.app = create_app(config, self.db, maker or build_template_maker(config.faces))
        self.sock = bind(host, port)
        self.url = url_of(self.sock, config)
        self.server = uvicorn.Server(_uvicorn_config(self.app, config))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="hub-server", daemon=True)

    def start(self) -> HubThread:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise KioskError("the hub did not start", fix="See the log above.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.app.state.stop.set()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
        if self.own_db:
            self.db.close()

    def __enter__(self) -> HubThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
