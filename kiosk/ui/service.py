"""What the web app needs from the running daemon, in one object: the screen's state, events, the
live preview, admin auth, guided enrolment and the card hook."""

from __future__ import annotations

import logging

from kiosk.base.events import Event
from kiosk.ui.admin import CardWaiter
from kiosk.ui.auth import AdminAuth, pin_is_set
from kiosk.ui.broadcast import Broadcaster
from kiosk.ui.enrol import EnrolController
from kiosk.ui.i18n import LANGUAGES
from kiosk.ui.preview import PreviewCache, PreviewFrame

log = logging.getLogger(__name__)

# Pipeline frame states -> face box colour on the preview.
STATE_TONES = {"decided": "ok", "deciding": "ok", "adjust": "adjust", "unknown": "unknown"}


class UiService:
    """Binds one KioskDaemon to the web app (see kiosk.ui.app)."""

    def __init__(self, daemon) -> None:  # noqa: ANN001 - KioskDaemon
        self.daemon = daemon
        self.cfg = daemon.config.ui
        self.auth = AdminAuth(daemon.store, self.cfg.admin_max_failures, self.cfg.admin_lockout_s,
                              self.cfg.admin_idle_logout_s, on_end=self._admin_ended)
        self.events = Broadcaster()
        self.enrol = EnrolController(daemon)
        self.cards = CardWaiter()
        self.preview = PreviewCache(self._preview_frame)
        self.stopping = False
        daemon.bus.subscribe(self._on_event)
        daemon.borrow_cards(self.cards.tap)

    def _on_event(self, event: Event) -> None:
        self.events.publish({"type": "event", **event.to_dict()})

    def _preview_frame(self) -> PreviewFrame | None:
        frame = self.enrol.preview()
        if frame is not None:
            return frame
        pipeline = self.daemon.pipeline
        latest = pipeline.latest if pipeline is not None else None
        if latest is None:
            return None
        shown, result = latest
        if result is None or result.face is None:
            return PreviewFrame(shown.image, shown.seq)
        return PreviewFrame(shown.image, shown.seq, result.face.bbox, STATE_TONES.get(result.state.value, "neutral"))

    def status(self) -> dict:
        """Device and clock states the screen turns into banners."""
        daemon = self.daemon
        devices = {}
        for device in (daemon.camera, daemon.rfid, daemon.gps):
            if device is not None:
                status = device.status
                devices[status.device] = status.state.value
        return {"type": "status", "devices": devices, "clock": daemon.clock.now().state,
                "enrolling": self.enrol.session is not None}

    def state(self) -> dict:
        """Everything the page needs once, at load."""
        config = self.daemon.config
        return {
            "branch": self.cfg.branch_title or config.device.branch, "device": config.device.name,
            "timezone": config.device.timezone, "language": self.cfg.language, "languages": list(LANGUAGES),
            "face": self.daemon.pipeline is not None, "card": self.daemon.rfid is not None,
            "liveness": self.daemon.pipeline is not None and config.liveness.enabled,
            "liveness_mode": config.liveness.mode,
            "preview": self.cfg.preview and self.daemon.camera is not None,
            "preview_fps": self.cfg.preview_fps, "result_display_s": self.cfg.result_display_s,
            "admin_idle_logout_s": self.cfg.admin_idle_logout_s, "pin_set": pin_is_set(self.daemon.store),
            "card_wait_s": self.cfg.card_wait_s, "status": self.status(),
        }

    def _admin_ended(self, reason: str) -> None:
        """Logout (or idle logout): an open enrolment ends and the camera goes back to punching."""
        self.enrol.close()
        self.events.publish({"type": "admin_logout", "reason": reason})
