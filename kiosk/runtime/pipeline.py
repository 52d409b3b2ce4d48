"""The walk-up pipeline, read top to bottom: frame -> (motion gate) -> detect/quality/embed/match/vote
(kiosk.face.walkup) -> liveness -> punch policy -> evidence.

One inference thread calls ``handle(frame)`` for every frame it takes from the camera queue. The 106-point
landmarks the liveness check reads run only while it still waits for a blink (``LivenessCheck.needs_blink``:
a challenge of turns alone never needs them), beside the frame's embedding on a spare core
(``FrameProcessor.process(beside=...)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.base.events import Event, EventKind
from kiosk.face.liveness import LivenessCheck, Verdict
from kiosk.face.quality import COVERED, worth_trying
from kiosk.face.walkup import FrameProcessor, FrameResult, FrameState

log = logging.getLogger(__name__)

THUMB_SIZE = (64, 48)
EVIDENCE_PX = 112
EVIDENCE_JPEG_QUALITY = 80


class MotionGate:
    """Has the picture changed since the last look? A 64x48 grey thumbnail, mean absolute difference."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._prev: np.ndarray | None = None

    def changed(self, image: np.ndarray) -> bool:
        if self.threshold <= 0:
            return True
        thumb = cv2.cvtColor(cv2.resize(image, THUMB_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        prev, self._prev = self._prev, thumb.astype(np.int16)
        if prev is None:
            return True
        return float(np.mean(np.abs(self._prev - prev))) >= self.threshold


@dataclass
class WalkupState:
    """What the pipeline knows of the walk-up in progress."""

    walkup_id: int = -1
    first_face_ns: int = 0
    handled: bool = False
    embeds: int = 0
    awaiting_blink: bool = False
    live: bool = False  # liveness passed: no more landmarks for this walk-up
    asked_uncover: str | None = None  # "mask" or "sunglasses": the screen has asked for it to come off


class Pipeline:
    """Turns camera frames into punches and events; used by one thread only."""

    def __init__(self, config, processor: FrameProcessor, policy, bus, liveness: LivenessCheck,  # noqa: ANN001
                 landmarks=None) -> None:  # noqa: ANN001
        self.config = config
        self.processor = processor
        self.policy = policy
        self.bus = bus
        self.liveness = liveness
        self.landmarks = landmarks
        self.motion = MotionGate(config.pipeline.motion_threshold)
        self.walkup = WalkupState()
        self._last_look_ns = 0
        self._moved = True
        # The newest frame and what was found in it, for the screen's live preview (read-only there).
        self.latest: tuple[object, FrameResult | None] | None = None

    # -- pacing ----------------------------------------------------------

    def _should_look(self, frame) -> bool:  # noqa: ANN001 - hardware Frame
        """While idle: only on motion, or every idle_interval_ms to catch someone standing still (that
        look is the cheap idle pass alone: the frame processor's search passes are for a changed picture)."""
        if self.processor.tracking:
            self._moved = True
            return True  # following a face: every frame counts, and no motion thumbnail is needed
        self._moved = self.motion.changed(frame.image)
        due = frame.mono_ns - self._last_look_ns >= self.config.pipeline.idle_interval_ms * 1e6
        return self._moved or due

    def handle(self, frame) -> FrameResult | None:  # noqa: ANN001 - hardware Frame
        if not self._should_look(frame):
            self.latest = (frame, None)
            return None
        self._last_look_ns = frame.mono_ns
        result = self.processor.process(frame.image, moved=self._moved,
                                        beside=lambda face: self._beside(frame, face))
        self.latest = (frame, result)
        if result.state is FrameState.IDLE or result.face is None:
            if not self.processor.tracking:
                self.finish_walkup()
            return result
        self._follow_walkup(frame)
        self.walkup.embeds += int(result.embedded)
        if not self.walkup.handled:
            self._ask_uncover(result)
            self._decide(frame, result)
        if self.walkup.handled:
            self.processor.settle()  # from now on only notice the person leave
        return result

    def _follow_walkup(self, frame) -> None:  # noqa: ANN001 - hardware Frame
        """The frame processor follows a new walk-up: end the last one, start a liveness attempt for this one."""
        if self.processor.walkup_id != self.walkup.walkup_id:
            self.finish_walkup()
            self.walkup = WalkupState(self.processor.walkup_id, frame.mono_ns)
            self._new_attempt()

    def _beside(self, frame, face):  # noqa: ANN001, ANN202 - hardware Frame, Face -> work or None
        """What this frame's face needs besides recognition: the 106-point landmarks, while the walk-up's
        liveness check still waits for a blink (asked once the frame processor follows the face)."""
        self._follow_walkup(frame)
        if self.landmarks is None or self.walkup.handled or not self._needs_landmarks():
            return None
        return lambda: self.landmarks(frame.image, face.bbox)

    def _needs_landmarks(self) -> bool:
        return self.config.liveness.enabled and not self.walkup.live and self.liveness.needs_blink

    def finish_walkup(self) -> None:
        """The person left (or the camera ended): say what became of an undecided walk-up."""
        walkup = self.walkup
        if walkup.walkup_id < 0 or walkup.handled:
            return
        walkup.handled = True
        if walkup.awaiting_blink:
            self.policy.on_not_live(detail="recognised, but the liveness check was not passed")
        elif walkup.embeds > 0 and self.policy.pending_verification() is None:
            self.policy.on_unrecognised(detail="walk-up ended undecided")

    # -- decisions -------------------------------------------------------

    def _ask_uncover(self, result: FrameResult) -> None:
        """A face refused for a mask or sunglasses (not recognised with them), or sunglasses while the liveness
        check still waits for a blink they hide: ask for it to come off, once per walk-up (again only if the
        other one is seen next)."""
        if result.quality is None:
            return
        worn = next((r for r in COVERED if r in result.quality.reasons), None)
        blink_hidden = worn == "sunglasses" and not self.walkup.live and self.liveness.needs_blink
        if result.state is not FrameState.ADJUST and not blink_hidden:
            return
        if worn is not None and worn != self.walkup.asked_uncover:
            self.walkup.asked_uncover = worn
            self.bus.publish(Event(EventKind.UNCOVER_FACE, detail=worn))

    def _new_attempt(self) -> None:
        """A fresh liveness attempt; in challenge mode the screen is told the new challenge at once."""
        self.liveness.reset()
        self._announce_challenge()

    def _announce_challenge(self) -> None:
        challenge = self.liveness.challenge
        if challenge is not None:
            self.bus.publish(Event(EventKind.CHALLENGE, challenge=",".join(challenge.steps), step=challenge.done,
                                   timeout_s=self.config.liveness.challenge_timeout_s))

    def _live(self, frame, result: FrameResult) -> Verdict:  # noqa: ANN001
        """The walk-up's liveness, fed the landmarks run beside the frame's recognition (``_beside``)."""
        if not self.config.liveness.enabled or self.walkup.live:
            return Verdict.LIVE
        lmk = result.beside  # None when no blink is left to see
        challenge = self.liveness.challenge
        done = challenge.done if challenge is not None else 0
        verdict = self.liveness.update(frame.mono_ns / 1e9, lmk, result.face.kps, frame.image)
        if challenge is not None and challenge.done != done:
            self._announce_challenge()  # a step ticked off on the screen
        self.walkup.live = verdict is Verdict.LIVE
        return verdict

    def _decide(self, frame, result: FrameResult) -> None:  # noqa: ANN001
        verdict = self._live(frame, result)
        if verdict is Verdict.SPOOF:
            challenge = self.liveness.challenge
            self.policy.on_not_live(detail=f"challenge {challenge.failure}" if challenge else "no blink seen")
            self._new_attempt()  # another chance: a new window (and a new challenge) starts now
            return
        pending = self.policy.pending_verification()
        if pending is not None:
            self._verify_card_holder(frame, result, pending, verdict)
            return
        if result.state is FrameState.UNKNOWN:
            self.policy.on_unrecognised(detail=result.match.reason if result.match else "")
            self.walkup.handled = True
        elif result.state is FrameState.DECIDED and verdict is not Verdict.LIVE:
            self.walkup.awaiting_blink = True
        elif result.state is FrameState.DECIDED:
            decision = result.decision
            event = self.policy.on_face(decision.employee_id, decision.score, self.walkup.first_face_ns,
                                        self._evidence(frame, result))
            self.walkup.handled = True
            self._after(event)

    def _verify_card_holder(self, frame, result: FrameResult, employee_id: str, verdict: Verdict) -> None:  # noqa: ANN001
        """The 1:1 check of a card holder's face. A face refused only for a mask or sunglasses is checked as
        the walk-up's search would (quality.covered_faces = advise); the policy decides on the score."""
        report = result.quality
        if report is not None and not report.ok and not worth_trying(report, self.processor.engine.quality_cfg):
            return
        vector = self.processor.engine.embed(frame.image, result.face)
        score = self.processor.gallery.best_of(vector, employee_id)
        if score is None:
            self.policy.on_face_mismatch(employee_id)
            self.walkup.handled = True
            return
        if verdict is Verdict.LIVE:
            event = self.policy.on_face_check(employee_id, score, self.walkup.first_face_ns,
                                              self._evidence(frame, result))
            if event is not None:
                self.walkup.handled = True
                self._after(event)

    def _evidence(self, frame, result: FrameResult) -> bytes | None:  # noqa: ANN001
        """The face thumbnail stored with the punch, in its transaction (when evidence is kept)."""
        if not self.config.store.evidence_thumbnails:
            return None
        return face_thumbnail(frame.image, result.face.bbox)

    def _after(self, event: Event) -> None:
        if event.kind is EventKind.PUNCHED:
            log.info("walk-up to durable punch: %.0f ms", event.latency_ms or 0)


def face_thumbnail(image: np.ndarray, bbox: np.ndarray) -> bytes:
    """A small JPEG of the face (evidence), never the whole frame."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in bbox[:4])
    crop = image[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if crop.size == 0:
        crop = image
    crop = cv2.resize(crop, (EVIDENCE_PX, EVIDENCE_PX), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, EVIDENCE_JPEG_QUALITY])
    return data.tobytes() if ok else b""
