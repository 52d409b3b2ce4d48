"""`kiosk run`: the long-running daemon — devices, the inference thread, punches, events, systemd.

Threads (all named): the camera's capture thread and the card reader's and GPS's reader threads
(hardware/), `inference` (this module: camera queue -> Pipeline), and the main thread, which
waits on the one stop event, pets the systemd watchdog, watches device states, reloads the
gallery when the roster changes, and purges expired evidence. SIGTERM/SIGINT only set the stop
event; `stop()` then runs its steps in order and flushes what must not be lost.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hardware.device import TROUBLE
from kiosk import __version__
from kiosk.base.errors import KioskError
from kiosk.base.events import Event, EventBus, EventKind
from kiosk.base.hardening import forbid_core_dumps
from kiosk.base.startup import resume_gc
from kiosk.punching.policy import PunchPolicy
from kiosk.punching.position import GpsLocator
from kiosk.runtime.sdnotify import Notifier
from kiosk.store.database import open_store
from kiosk.time.trusted import TrustedClock

log = logging.getLogger(__name__)

Tap = Callable[[Any], bool]
"""Takes a frame or card read; True when it consumed it."""


class Attached(Protocol):
    """Something an extension started beside the daemon; stopped first when the daemon stops."""

    def stop(self) -> None: ...


Extension = Callable[["KioskDaemon"], Attached | None]
"""Started once the devices run, before READY: gets the daemon, returns what to stop (or None)."""

MAIN_LOOP_S = 1.0
ROSTER_CHECK_S = 2.0
EVIDENCE_PURGE_S = 3600.0
RESTARTS_MAX = 5
RESTART_WINDOW_S = 300.0
CAMERA_READ_TIMEOUT_S = 0.5


@dataclass
class RestartBudget:
    """At most ``limit`` restarts within ``window_s``; then the part stays down and says so."""

    limit: int = RESTARTS_MAX
    window_s: float = RESTART_WINDOW_S
    times: list[float] = field(default_factory=list)

    def allow(self) -> bool:
        now = time.monotonic()
        self.times = [t for t in self.times if now - t < self.window_s]
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


class KioskDaemon:
    """Everything `kiosk run` starts, in the order it starts it."""

    def __init__(self, config, exit_when_camera_ends: bool = False, bus: EventBus | None = None,  # noqa: ANN001
                 extensions: Sequence[Extension] = ()) -> None:
        self.config = config
        self.extensions = list(extensions)
        self.exit_when_camera_ends = exit_when_camera_ends
        self.stop_event = threading.Event()
        self.notifier = Notifier()
        self.bus = bus or EventBus(config.events.stdout_json, stdout_personal=config.events.stdout_personal)
        self.started_mono = time.monotonic()
        self.store = open_store(config)
        self._normalise_cards()
        self.clock = TrustedClock(config.clock)
        floor = self.store.punches.newest_verified_utc()
        if floor is not None:
            self.clock.raise_floor(floor)
        self.camera = self.rfid = self.gps = self.feedback = None
        self.engine = self.gallery = self.pipeline = None
        self._inference: threading.Thread | None = None
        self._device_states: dict[EventKind, Any] = {}
        self._roster_signature = None
        self._last_purge = 0.0
        self.exit_code = 0
        self._frame_tap: Tap | None = None
        self._card_tap: Tap | None = None
        self._attached: list[Attached] = []
        try:
            self._open_parts()
        except BaseException:
            self.store.close()
            raise

    # -- building --------------------------------------------------------

    def _normalise_cards(self) -> None:
        """Cards typed in before every way in normalised them would never match a reader: fix them once."""
        try:
            rewritten = self.store.roster.renormalise_cards()
        except KioskError as exc:
            log.warning("stored card numbers not normalised: %s", exc.what)
            return
        if rewritten:
            log.info("rewrote %d stored card number(s) to the readers' form (rfid.card_format = %s)",
                     rewritten, self.config.rfid.card_format)

    def _uses_face(self) -> bool:
        return self.config.punch.mode != "card" and bool(self.config.camera.source.strip()) \
            and self.config.camera.source.strip() != "none"

    def _open_parts(self) -> None:
        import hardware  # a driver's module loads only with its device (the GPS's pynmea2, the readers' pyserial)
        self.feedback = hardware.open_feedback(self.config.feedback)
        self.bus.subscribe(self._signal)
        if self._uses_face():
            self._open_face()
            self.camera = hardware.open_camera(self.config.camera)
        if self.config.rfid.port:
            self.rfid = hardware.open_rfid(self.config.rfid, on_card=self._on_card)
        if self.config.gps.port:
            self.gps = hardware.open_gps(self.config.gps)
        locate = GpsLocator(self.gps, self.config.geofence) if self.gps is not None else None
        self.policy = PunchPolicy(self.config, self.store, self.clock, self.bus, locate=locate,
                                  geofence_policy=self.config.geofence.policy)
        if self.pipeline is not None:
            self.pipeline.policy = self.policy

    def _open_face(self) -> None:
        from kiosk.face.engine import FaceEngine
        from kiosk.face.gallery import pack_change
        from kiosk.face.landmarks import Landmarks106
        from kiosk.face.liveness import LivenessCheck, PassiveModel
        from kiosk.face.sessions import KEPT_GRAPHS_DIR, KeptGraphs
        from kiosk.face.walkup import FrameProcessor
        from kiosk.runtime.pipeline import Pipeline

        # No warm-up run on blank frames: it cost ~0.05 CPU-s at every start and saved at most a few ms on
        # the first frames after it (kiosk bench startup, README).
        graphs = KeptGraphs(self.config.store.path.parent / KEPT_GRAPHS_DIR, self.store)
        self.engine = FaceEngine.from_config(self.config.face, self.config.quality, memory=self.store, graphs=graphs)
        change = pack_change(self.store.roster, self.engine.model_id)
        if change:
            log.warning("%s", change)
        self.gallery, point = self._load_gallery()
        self._roster_signature = self.store.roster.signature()
        live = self.config.liveness
        landmarks = Landmarks106(self.engine) if live.enabled else None
        passive = None
        if live.enabled and live.passive_model is not None:
            passive = PassiveModel(live.passive_model, live.passive_threshold)
        elif live.enabled and live.mode == "blink":
            log.info("liveness: active blink check only (no passive liveness model configured: "
                     "liveness.passive_model); a video replay of a blinking person is not stopped")
        elif live.enabled:
            log.info("liveness: a random challenge of %d step(s) per walk-up, %.0f s to do it",
                     live.challenge_steps, live.challenge_timeout_s)
        processor = FrameProcessor(self.engine, self.gallery)
        self.pipeline = Pipeline(self.config, processor, None, self.bus, LivenessCheck(live, passive), landmarks)
        log.info("face: %d template(s) of %d employee(s) usable with model %s", len(self.gallery),
                 self.gallery.employees, self.engine.model_id[:12])
        log.info("%s", point.describe())

    def _load_gallery(self):  # noqa: ANN202 - (Gallery, OperatingPoint)
        """The roster's gallery at the threshold its size calls for (kiosk.face.calibration)."""
        from kiosk.face.calibration import roster_gallery
        return roster_gallery(self.store.roster, self.engine.pack, self.config.face, self.config.match,
                              threads=self.config.face.threads)

    # -- borrowing inputs (the screen's guided enrolment and admin card reads) -----

    def borrow_frames(self, tap: Tap | None) -> None:
        """Send each camera frame to ``tap`` first (None gives them back); a frame the tap consumes
        (returns True) is not used for punching."""
        self._frame_tap = tap

    def borrow_cards(self, tap: Tap | None) -> None:
        """Send each card read to ``tap`` first (None gives them back); a consumed read punches nobody."""
        self._card_tap = tap

    # -- inputs from devices --------------------------------------------

    def _on_card(self, read) -> None:  # noqa: ANN001 - hardware CardRead
        tap = self._card_tap
        if tap is not None and tap(read.card):  # admin mode: "tap the card to add"
            return
        try:
            self.policy.on_card(read.card)
        except KioskError as exc:
            log.error("card %s not handled: %s", read.card[-4:], exc)

    def _signal(self, event: Event) -> None:
        """Buzzer/LEDs/door for the events a person must notice."""
        from hardware import Signal
        if event.kind is EventKind.PUNCHED:
            self.feedback.signal(Signal.ACCEPTED)
            self.feedback.open_door()
        elif event.kind in (EventKind.ALREADY_PUNCHED, EventKind.SHOW_FACE, EventKind.CHOOSE_DIRECTION):
            self.feedback.signal(Signal.ATTENTION)
        elif event.kind in (EventKind.NOT_RECOGNISED, EventKind.USE_CARD, EventKind.UNKNOWN_CARD,
                            EventKind.FACE_MISMATCH, EventKind.OUTSIDE_GEOFENCE, EventKind.STORE_ERROR,
                            EventKind.NOT_LIVE):
            self.feedback.signal(Signal.REJECTED)

    # -- running ---------------------------------------------------------

    def run(self) -> int:
        """Start everything, serve until stopped, stop in order; returns the exit code."""
        self._install_signals()
        for device in (self.feedback, self.camera, self.rfid, self.gps):
            if device is not None:
                device.start()
        for extension in self.extensions:  # e.g. the kiosk screen (kiosk/ui/server.py), given by `kiosk run`
            attached = extension(self)
            if attached is not None:
                self._attached.append(attached)
        # Last, so frames are judged once the rest has started, not beside the screen's start (the camera's
        # queue keeps the newest frames meanwhile).
        if self.pipeline is not None:
            self._start_inference()
        status = self._status_line()
        self.notifier.ready(status)
        self.bus.publish(Event(EventKind.READY, detail=status))
        resume_gc()  # paused by the `kiosk` command since it started (kiosk.base.startup)
        log.info("kiosk %s ready: %s", __version__, status)
        watchdog_s = self.notifier.watchdog_interval_s()
        try:
            while not self.stop_event.wait(self._next_wait_s(watchdog_s)):
                self._tick()
        finally:
            self.stop()
        return self.exit_code

    def _start_inference(self) -> None:
        budget = RestartBudget()

        def body() -> None:
            while not self.stop_event.is_set():
                try:
                    self._inference_loop()
                    return
                except Exception:
                    log.exception("inference thread failed")
                    if not budget.allow():
                        log.error("inference failed %d times in %.0f s: face punching is off until restart; "
                                  "cards still work", RESTARTS_MAX, RESTART_WINDOW_S)
                        self.bus.publish(Event(EventKind.CAMERA_OFFLINE, detail="face recognition stopped"))
                        return
                    self.stop_event.wait(1.0)

        self._inference = threading.Thread(target=body, name="inference", daemon=True)
        self._inference.start()

    def _inference_loop(self) -> None:
        while not self.stop_event.is_set():
            frame = self.camera.read(CAMERA_READ_TIMEOUT_S)
            if frame is None:
                if self.camera.finished and self.exit_when_camera_ends:
                    log.info("camera source ended: every frame processed; stopping")
                    self.pipeline.finish_walkup()
                    self.stop_event.set()
                continue
            tap = self._frame_tap
            if tap is not None and tap(frame):  # guided enrolment: no punching
                continue
            self.pipeline.handle(frame)

    def _next_wait_s(self, watchdog_s: float | None) -> float:
        """Until the next tick: each MAIN_LOOP_S, sooner for the watchdog or a punch's 上班 / 下班 deadline."""
        waits = [MAIN_LOOP_S, watchdog_s or MAIN_LOOP_S]
        deadline_s = self.policy.seconds_to_choice_deadline()
        return min([*waits, deadline_s]) if deadline_s is not None else min(waits)

    def _tick(self) -> None:
        self.notifier.watchdog()
        self._settle_direction()
        self._watch_devices()
        self._feed_clock()
        reading = self.clock.now()
        if self.clock.anchor_due(reading):
            # As soon as a source knows the true time, tie this boot's monotonic clock to it: that
            # is what lets the hub correct punches stored while the clock was unverified.
            try:
                self.clock.record_anchor(self.store, reading)
            except KioskError as exc:
                log.warning("clock anchor not recorded: %s", exc)
        now = time.monotonic()
        if self.gallery is not None and now - getattr(self, "_last_roster_check", 0.0) >= ROSTER_CHECK_S:
            self._last_roster_check = now
            self._reload_gallery_if_changed()
        if self.config.store.evidence_thumbnails and now - self._last_purge >= EVIDENCE_PURGE_S:
            self._last_purge = now
            purged = self.store.evidence.purge(self.config.store.evidence_retention_days)
            if purged:
                log.info("erased %d evidence thumbnail(s) past %d days", purged,
                         self.config.store.evidence_retention_days)

    def _settle_direction(self) -> None:
        """direction = buttons: a punch nobody tapped 上班 / 下班 for is recorded with the pre-selected
        direction once its time is up (also when no screen is looking: a punch is never lost)."""
        self.policy.settle_due()

    def _watch_devices(self) -> None:
        """Publish each device's going offline and coming back (the screen's banners, the log)."""
        for device, (offline, online) in ((self.camera, (EventKind.CAMERA_OFFLINE, EventKind.CAMERA_ONLINE)),
                                          (self.rfid, (EventKind.READER_OFFLINE, EventKind.READER_ONLINE)),
                                          (self.gps, (EventKind.GPS_OFFLINE, EventKind.GPS_ONLINE))):
            if device is not None:
                self._watch(device, offline, online)

    def _watch(self, device, offline: EventKind, online: EventKind) -> None:  # noqa: ANN001 - hardware Device
        status = device.status
        previous = self._device_states.get(offline)
        if status.state == previous:
            return
        self._device_states[offline] = status.state
        if status.state.working:
            if previous is not None:
                self.bus.publish(Event(online, detail=status.reason))
        elif status.state in TROUBLE:
            self.bus.publish(Event(offline, detail=status.reason))
            if device is self.camera and self.exit_when_camera_ends:
                log.error("camera %s cannot be read (%s); with --exit-when-camera-ends there is nothing to "
                          "wait for: stopping", self.camera.describe(), status.reason)
                self.exit_code = 1
                self.stop_event.set()
        self.notifier.status(self._status_line())

    def _feed_clock(self) -> None:
        from kiosk.time.hubclock import latest_hub_clock
        hub = latest_hub_clock(self.store)
        if hub is not None and hub.same_boot():
            self.clock.note_hub(hub.offset_s, hub.mono_ns)
        if self.gps is None:
            return
        gps_time = self.gps.time()
        if gps_time is not None:
            self.clock.note_gps(gps_time.utc, gps_time.wall_s, gps_time.mono_ns)

    def _reload_gallery_if_changed(self) -> None:
        signature = self.store.roster.signature()
        if signature == self._roster_signature:
            return
        self._roster_signature = signature
        before = self.gallery.cfg.threshold
        gallery, point = self._load_gallery()
        self.pipeline.processor.use_gallery(gallery)
        self.gallery = gallery
        log.info("roster changed: %d template(s) of %d employee(s) loaded", len(gallery), gallery.employees)
        if point.threshold != before:
            log.info("%s", point.describe())

    def _status_line(self) -> str:
        parts = [f"mode {self.config.punch.mode}"]
        for device in (self.camera, self.rfid, self.gps):
            if device is not None:
                parts.append(f"{device.status.device} {device.status.state.value}")
        parts.append(f"clock {self.clock.now().state}")
        return ", ".join(parts)

    def health(self) -> dict:
        """What an admin sees on the device-health page."""
        devices = [d.status.as_dict() for d in (self.camera, self.rfid, self.gps) if d is not None]
        head = self.store.punches.head()
        reading = self.clock.now()
        return {
            "version": __version__, "uptime_s": round(time.monotonic() - self.started_mono),
            "mode": self.config.punch.mode, "devices": devices,
            "clock": {"state": reading.state, "source": reading.source, "offset_s": reading.offset_s},
            "model_id": self.engine.model_id if self.engine else None,
            "templates": len(self.gallery) if self.gallery is not None else 0,
            "punches": head.seq if head else 0, "last_punch_utc": head.ts_utc if head else None,
        }

    # -- stopping --------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, _frame) -> None:  # noqa: ANN001
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def stop(self) -> None:
        """1 stop event, 2 camera, 3 inference thread (finishes its frame: a punch in flight commits
        or not at all), 4 readers, 5 a punch waiting for its 上班 / 下班 tap is recorded with the
        pre-selected direction, 6 store (checkpoint, close), 7 tell systemd."""
        self.stop_event.set()
        self.notifier.stopping()
        for attached in reversed(self._attached):  # the screen first, so no admin action races the shutdown
            attached.stop()
        if self.camera is not None:
            self.camera.stop()
        if self._inference is not None:
            self._inference.join(timeout=10)
        for device in (self.rfid, self.gps, self.feedback):
            if device is not None:
                device.stop()
        self.policy.settle_waiting()
        self.store.close()
        log.info("kiosk stopped")


def run_daemon(config, exit_when_camera_ends: bool = False,  # noqa: ANN001 - KioskConfig
               extensions: Sequence[Extension] = ()) -> int:
    """Build the daemon from a config and run it until stopped; returns the exit code."""
    forbid_core_dumps()  # before the store's key is read
    return KioskDaemon(config, exit_when_camera_ends, extensions=extensions).run()
