"""The screen's web server: uvicorn on its own named thread inside `kiosk run`, started and stopped by
the daemon. A server that cannot start (port taken) is logged; the kiosk keeps punching without it."""

from __future__ import annotations

import logging
import threading

import uvicorn

from kiosk.ui.app import create_app
from kiosk.ui.service import UiService

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# Long-lived streams (events, preview) are cut after this on shutdown instead of waited for.
GRACEFUL_SHUTDOWN_S = 1


class UiServer:
    """uvicorn serving one UiService on ui.bind:ui.port."""

    def __init__(self, service: UiService) -> None:
        self.service = service
        cfg = service.cfg
        config = uvicorn.Config(create_app(service), host=cfg.bind, port=cfg.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="ui-http", daemon=True)

    @property
    def url(self) -> str:
        cfg = self.service.cfg
        host = "127.0.0.1" if cfg.bind in ("0.0.0.0", "::", "127.0.0.1") else cfg.bind
        return f"http://{'[' + host + ']' if ':' in host else host}:{cfg.port}/"

    def start(self) -> bool:
        """Serve; True once listening, False when the server could not start."""
        self.thread.start()
        waited = 0.0
        while not self.server.started and self.thread.is_alive() and waited < START_TIMEOUT_S:
            self.thread.join(0.05)
            waited += 0.05
        if not self.server.started:
            log.error("kiosk screen NOT served: cannot listen on %s:%d (port in use or address not on this "
                      "machine); punching goes on. Fix ui.bind/ui.port and restart.", self.service.cfg.bind,
                      self.service.cfg.port)
            return False
        log.info("kiosk screen at %s", self.url)
        return True

    def stop(self) -> None:
        self.service.stopping = True
        self.service.enrol.close()
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT_S)
        if self.thread.is_alive():
            log.warning("the screen's web server did not stop within %.0f s", STOP_TIMEOUT_S)


def start_ui(daemon) -> UiServer | None:  # noqa: ANN001 - KioskDaemon
    """Build and start the screen for a daemon; None when it could not start."""
    server = UiServer(UiService(daemon))
    return server if server.start() else None
