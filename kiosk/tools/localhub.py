"""Local hubs for tests and benchmarks: a real `kiosk hub serve` child process, a throwaway PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from kiosk.base.errors import KioskError

DEFAULT_ADMIN_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
ADMIN_DSN_ENV = "KIOSK_TEST_PG_DSN"
URL_RE = re.compile(r"hub listening on (https?://\S+)")


def admin_dsn() -> str:
    """The PostgreSQL server used to create throwaway databases: $KIOSK_TEST_PG_DSN or 127.0.0.1:5432."""
    return os.environ.get(ADMIN_DSN_ENV, DEFAULT_ADMIN_DSN)


def postgres_unavailable(dsn: str | None = None) -> str | None:
    """None when PostgreSQL answers at ``dsn``, else why not (for a test skip reason)."""
    import psycopg
    try:
        psycopg.connect(dsn or admin_dsn(), connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at '{dsn or admin_dsn()}': {str(exc).strip().splitlines()[0]}"
    return None


def _dsn_with_db(dsn: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@contextlib.contextmanager
def temporary_database(dsn: str | None = None, prefix: str = "kiosk_hub_test") -> Iterator[str]:
    """A fresh, randomly named PostgreSQL database, dropped afterwards; yields its DSN."""
    import psycopg
    dsn = dsn or admin_dsn()
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _dsn_with_db(dsn, name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class HubProcess:
    """`python -m kiosk hub serve --config FILE` as a child process, so it can be killed for real."""

    def __init__(self, config_path: Path, port: int = 0, log_path: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.config_path = Path(config_path)
        self.port = port
        self.log_path = log_path or self.config_path.with_suffix(".log")
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout_s: float = 30.0) -> HubProcess:
        args = [sys.executable, "-m", "kiosk", "hub", "serve", "--config", str(self.config_path),
                "--port", str(self.port), *self.extra]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = URL_RE.search(line)
            if match:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.kill()
        raise KioskError(f"hub process did not start: {line.strip() or 'no output'}",
                         fix=f"See {self.log_path}.")

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until the API answers (the socket is bound before uvicorn accepts; workers load the face
        models first, which takes a while on a loaded machine)."""
        import httpx
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise KioskError("hub process did not answer /v1/health", fix=f"See {self.log_path}.")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when power is cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes in-flight requests, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> HubProcess:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
