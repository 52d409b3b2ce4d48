"""What the kiosk tells the person in front of it: structured events, logged, printed, and fanned out."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from kiosk.base.timeutil import iso_utc, utc_now

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    READY = "ready"                          # idle screen: please look at the camera
    PUNCHED = "punched"                      # Clocked in 08:57 — Wang Li
    CHOOSE_DIRECTION = "choose_direction"    # direction = buttons: 上班 / 下班? (one pre-selected)
    ALREADY_PUNCHED = "already_punched"      # already punched at 08:57
    NOT_RECOGNISED = "not_recognised"        # not recognised — please use your card
    USE_CARD = "use_card"                    # after several failed attempts
    NOT_LIVE = "not_live"                    # the liveness check failed (no blink, challenge not done)
    UNCOVER_FACE = "uncover_face"            # not recognised with a mask / sunglasses (detail): please take it off
    CHALLENGE = "challenge"                  # liveness challenge: do these steps in order (arrows on screen)
    UNKNOWN_CARD = "unknown_card"            # this card is not registered
    SHOW_FACE = "show_face"                  # card_and_face: now look at the camera
    FACE_MISMATCH = "face_mismatch"          # card_and_face: the face is not the card holder's
    CARD_REQUIRED = "card_required"          # card_and_face: a face alone does not punch
    CAMERA_OFFLINE = "camera_offline"        # camera offline — please use your card
    CAMERA_ONLINE = "camera_online"
    READER_OFFLINE = "reader_offline"      # card reader offline — please look at the camera
    READER_ONLINE = "reader_online"
    GPS_OFFLINE = "gps_offline"              # admins only (health page, log): punches get no_gps_fix
    GPS_ONLINE = "gps_online"
    TIME_UNVERIFIED = "time_unverified"      # quiet notice: clock not yet confirmed
    OUTSIDE_GEOFENCE = "outside_geofence"    # outside the branch area
    STORE_ERROR = "store_error"              # punch not recorded: tell an admin


# Events whose news the log line of another event already carries (a punched line says "clock unverified").
SAID_ELSEWHERE = frozenset({EventKind.TIME_UNVERIFIED})

# Fields that say who someone is or how their face matched: the screen needs them, stdout (the journal,
# kept after an erasure) does not unless the operator asks (`events.stdout_personal`).
PERSONAL_FIELDS = frozenset({"name", "score"})


@dataclass(frozen=True)
class Event:
    kind: EventKind
    ts_utc: str = field(default_factory=lambda: iso_utc(utc_now()))
    employee_id: str | None = None
    name: str | None = None
    local_time: str | None = None
    method: str | None = None
    direction: str | None = None  # IN / OUT on a punch, when the kiosk's rule gives one
    score: float | None = None
    punch_id: str | None = None
    choice_id: str | None = None  # choose_direction: what the screen's tap names (POST /api/direction)
    timeout_s: float | None = None  # choose_direction: seconds until the pre-selected direction is taken
    latency_ms: float | None = None  # first frame showing the face -> durable punch
    challenge: str | None = None  # challenge: the steps in order, e.g. "turn_left,blink"
    step: int | None = None  # challenge: how many of them are done
    detail: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["kind"] = self.kind.value
        return {k: v for k, v in data.items() if v is not None and v != ""}

    def stdout_dict(self, personal: bool = False) -> dict:
        """The JSON line printed on stdout: ids, method, times; names and match scores only if ``personal``."""
        data = self.to_dict()
        return data if personal else {k: v for k, v in data.items() if k not in PERSONAL_FIELDS}

    def log_line(self) -> str:
        """One readable line for the log: ids, method, direction, latency — never a name.

        ``punched E003 by face IN in 151 ms (score 0.71, punch 0192...)``,
        ``already_punched E003 at 08:57``, ``camera_offline: no frame for 10 s; reopening``.
        """
        words = [self.kind.value + (":" if self.detail and not self.employee_id else "")]
        words += [self.employee_id] if self.employee_id else []
        words += [f"by {self.method}"] if self.method and self.kind is not EventKind.ALREADY_PUNCHED else []
        words += [self.direction] if self.direction else []
        words += [f"at {self.local_time}"] if self.local_time and self.kind is EventKind.ALREADY_PUNCHED else []
        words += [f"in {self.latency_ms:.0f} ms"] if self.latency_ms is not None else []
        words += [f"{self.challenge}, {self.step} done"] if self.challenge else []
        extra = ([f"score {self.score:.2f}"] if self.score is not None else []) + \
                ([f"punch {self.punch_id}"] if self.punch_id else [])
        if self.detail and self.employee_id:
            extra.append(self.detail)
        elif self.detail:
            words.append(self.detail)
        return " ".join(words) + (f" ({', '.join(extra)})" if extra else "")


class EventBus:
    """Publishes events to the log, optionally stdout (JSON lines), and subscribers (the screen)."""

    def __init__(self, stdout_json: bool = True, keep: int = 200, stdout_personal: bool = False) -> None:
        self.stdout_json = stdout_json
        self.stdout_personal = stdout_personal
        self.recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def publish(self, event: Event) -> None:
        with self._lock:
            self.recent.append(event)
            subscribers = list(self._subscribers)
        # The log gets ids only (names stay on the screen and in the event stream); never images or embeddings.
        log.log(logging.DEBUG if event.kind in SAID_ELSEWHERE else logging.INFO, "event %s", event.log_line())
        if self.stdout_json:
            sys.stdout.write(json.dumps(event.stdout_dict(self.stdout_personal), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken screen must never stop punching
                log.exception("event subscriber failed")
