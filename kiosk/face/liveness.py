"""Liveness: an active check from landmarks over time (a random challenge, or a natural blink) and an
optional passive model.

mode = challenge (the default): each walk-up gets a random sequence (CSPRNG) of distinct steps from
turn left / turn right / blink, shown on the screen up front; the person does them in that order
within liveness.challenge_timeout_s. A turn is the yaw of the detector's 5 keypoints (nose against the
eyes) beyond challenge_turn_deg from where the person started, and back; a turn the other way, or
when none is asked, fails the attempt at once. A recorded video (a phone replay) cannot follow an
order it did not know: it passes only if its own movements happen to match the sequence, in time.
A flat photo turned like a head keeps its yaw (the nose and the eyes squash together), and its eyes
never close.

mode = blink: any natural blink. Stops printed photos and photos on a screen, held still or moved,
tilted or bent (eye openness is measured relative to the face's own proportions, so tilting a photo is
not a blink); does NOT stop a video replay of the person blinking.

Neither stops a mask with cut-out eyes or a deep-fake stream driven live; the passive model, when
supplied, is a further defence for screens; a card_and_face policy raises the bar further.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from kiosk.base.errors import KioskError
from kiosk.face.config import LivenessConfig

log = logging.getLogger(__name__)

# Index groups of insightface's 2d106det landmark model (found on blink videos: the upper lid
# points 40-42 / 94-96 drop during a blink).
LEFT_EYE = np.arange(33, 43)
RIGHT_EYE = np.arange(87, 97)
MOUTH = np.arange(52, 72)


def eye_openness(lmk: np.ndarray) -> float:
    """Both eyes' height/width, divided by the face's height/width (so a tilted photo stays constant).

    Face width is the distance between the eye centres; face height the distance from their
    midpoint to the mouth centre.
    """
    lmk = np.asarray(lmk, dtype=np.float32)
    ratios = []
    centres = []
    for idx in (LEFT_EYE, RIGHT_EYE):
        eye = lmk[idx]
        width = float(np.ptp(eye[:, 0])) or 1e-6
        ratios.append(float(np.ptp(eye[:, 1])) / width)
        centres.append(eye.mean(axis=0))
    face_w = float(np.linalg.norm(centres[1] - centres[0])) or 1e-6
    face_h = float(np.linalg.norm(lmk[MOUTH].mean(axis=0) - (centres[0] + centres[1]) / 2)) or 1e-6
    return float(np.mean(ratios)) / (face_h / face_w)


def yaw_proxy_deg(kps: np.ndarray) -> float:
    """Rough yaw from the 5 detector keypoints: the nose's offset from the eyes' midline."""
    kps = np.asarray(kps, dtype=np.float32)
    eye_mid = (kps[0] + kps[1]) / 2
    inter = float(np.linalg.norm(kps[1] - kps[0])) or 1e-6
    return float(np.degrees(np.arctan2(kps[2][0] - eye_mid[0], inter)))


class Verdict(StrEnum):
    PENDING = "pending"
    LIVE = "live"
    SPOOF = "spoof"


class Step(StrEnum):
    """One thing a challenge asks for; 'left' and 'right' are the person's own (the screen's arrow
    points the same way as they see it). With an unmirrored camera, turning to one's left moves the
    nose towards the image's right: a positive yaw_proxy_deg."""

    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    BLINK = "blink"


TURN_SIGN = {Step.TURN_LEFT: 1.0, Step.TURN_RIGHT: -1.0}
START_FRAMES = 3  # frames whose median yaw is where the person started


def pick_steps(rng: random.Random, count: int) -> tuple[Step, ...]:
    """``count`` distinct steps in a random order (``rng``: secrets.SystemRandom at the kiosk)."""
    return tuple(rng.sample(list(Step), count))


@dataclass
class BlinkDetector:
    """Per walk-up state machine over eye openness: open baseline -> dip -> recovery = one blink."""

    cfg: LivenessConfig
    history: list[float] = field(default_factory=list)
    closed_since: float | None = None
    blinks: int = 0

    def baseline(self) -> float | None:
        if len(self.history) < self.cfg.min_baseline_frames:
            return None
        return float(np.percentile(self.history[-30:], 80))

    def update(self, openness: float, t_s: float) -> int:
        """Feed one frame's openness at time ``t_s``; returns the number of blinks seen so far."""
        base = self.baseline()
        if base is not None and self.closed_since is None and openness < base * self.cfg.closed_ratio:
            self.closed_since = t_s
            return self.blinks
        if self.closed_since is not None:
            if openness > (base or openness) * self.cfg.reopen_ratio:
                if t_s - self.closed_since <= self.cfg.max_blink_s:
                    self.blinks += 1
                self.closed_since = None
            elif t_s - self.closed_since > self.cfg.max_blink_s:
                return self.blinks  # a long closure (looking down) is not a blink; wait for reopening
            else:
                return self.blinks
        self.history.append(openness)
        return self.blinks


@dataclass
class Challenge:
    """One attempt at a sequence of steps, judged frame by frame; ``failure`` says why it failed."""

    steps: tuple[Step, ...]
    cfg: LivenessConfig
    done: int = 0
    failure: str = ""
    started: float | None = None
    starts: list[float] = field(default_factory=list)
    turned: bool = False
    blinks_at_step: int = 0

    def __post_init__(self) -> None:
        self.blink = BlinkDetector(self.cfg)

    @property
    def passed(self) -> bool:
        return self.done >= len(self.steps)

    def update(self, t_s: float, openness: float | None, yaw: float) -> Verdict:
        """One frame; ``openness`` None when no blink is left to judge (its landmarks were not run)."""
        if self.started is None:
            self.started = t_s
        if self.passed:
            return Verdict.LIVE
        if len(self.starts) < START_FRAMES:
            self.starts.append(yaw)
            if openness is not None:
                self.blink.update(openness, t_s)
            self.blinks_at_step = self.blink.blinks
            return Verdict.PENDING
        offset = yaw - float(np.median(self.starts))
        if openness is not None and abs(offset) < self.cfg.challenge_turn_deg:
            self.blink.update(openness, t_s)  # a blink is judged on a face not turned away
        if self._judge(offset):
            self.done += 1
            self.turned = False
            self.blinks_at_step = self.blink.blinks
        if self.failure:
            return Verdict.SPOOF
        if self.passed:
            return Verdict.LIVE
        if t_s - self.started > self.cfg.challenge_timeout_s:
            self.failure = "timeout"
            return Verdict.SPOOF
        return Verdict.PENDING

    def _judge(self, offset: float) -> bool:
        """Whether the current step is done with this frame (sets ``failure`` on a turn not asked for)."""
        step = self.steps[self.done]
        sign = TURN_SIGN.get(step)
        if abs(offset) >= self.cfg.challenge_turn_deg and (sign is None or offset * sign < 0):
            self.failure = "wrong_turn"
            return False
        if sign is None:
            return self.blink.blinks > self.blinks_at_step
        if offset * sign >= self.cfg.challenge_turn_deg:
            self.turned = True
        return self.turned and abs(offset) <= self.cfg.challenge_return_deg


class PassiveModel:
    """insightface's passive liveness adapter (80x80 ONNX), when the operator supplies a model."""

    def __init__(self, path: Path, threshold: float, sess_options: object | None = None) -> None:
        if not path.is_file():
            raise KioskError(f"liveness model {path} does not exist",
                             fix="Fix liveness.passive_model, or remove it to run the active check only.")
        from insightface.addons.liveness import Liveness
        try:
            self.model = Liveness(str(path), threshold=threshold, providers=["CPUExecutionProvider"],
                                  sess_options=sess_options)
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            raise KioskError(f"liveness model {path} cannot be loaded: {exc}",
                             fix="Supply an insightface passive liveness model (float [N,3,80,80] -> [N]).") from None

    def score(self, image: np.ndarray, kps: np.ndarray) -> float | None:
        result = self.model.predict(image, kps)
        return result["live_score"] if result["status"] == "ok" else None


class LivenessCheck:
    """One walk-up's liveness: the active check of ``cfg.mode`` (a random challenge, or a blink and an
    optional head turn), plus the passive model if any. ``reset()`` starts a new attempt (and, in
    challenge mode, draws a new challenge from ``rng``: the system's CSPRNG unless a test gives one)."""

    def __init__(self, cfg: LivenessConfig, passive: PassiveModel | None = None,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.passive = passive
        self.rng = rng if rng is not None else secrets.SystemRandom()
        self.reset()

    def reset(self, steps: tuple[Step, ...] | None = None) -> None:
        """A new attempt; in challenge mode with ``steps`` when the caller drew them (the hub draws a field
        punch's challenge before the phone films it), else a new draw from ``rng``."""
        self.started: float | None = None
        self.blink = BlinkDetector(self.cfg)
        self.yaws: list[float] = []
        self.passive_scores: list[float] = []
        self.challenge: Challenge | None = None
        if self.cfg.enabled and self.cfg.mode == "challenge":
            self.challenge = Challenge(steps or pick_steps(self.rng, self.cfg.challenge_steps), self.cfg)

    @property
    def needs_blink(self) -> bool:
        """Is a blink still to come (a blink step not yet done, or blink mode before its blink)? Sunglasses
        hide it: the walk-up then asks for them to come off (kiosk.runtime.pipeline). Only then does a frame
        need the 106-point landmarks (eye openness): turns are judged on the detector's five keypoints."""
        if not self.cfg.enabled:
            return False
        if self.challenge is not None:
            return Step.BLINK in self.challenge.steps[self.challenge.done:] and not self.challenge.failure
        return self.blink.blinks < 1

    def update(self, t_s: float, lmk106: np.ndarray | None, kps: np.ndarray,
               image: np.ndarray | None = None) -> Verdict:
        """Feed one frame of the walk-up; LIVE once every required check has passed. ``lmk106`` may be None
        when no blink is still to come (``needs_blink`` false): the caller need not run the landmarks."""
        if not self.cfg.enabled:
            return Verdict.LIVE
        if self.started is None:
            self.started = t_s
        if self.passive is not None and image is not None:
            score = self.passive.score(image, kps)
            if score is not None:
                self.passive_scores.append(score)
        if self.challenge is not None:
            openness = None if lmk106 is None else eye_openness(lmk106)
            verdict = self.challenge.update(t_s, openness, yaw_proxy_deg(kps))
            if verdict is Verdict.LIVE and not self._passive_ok():
                return self._pending_or_spoof(t_s, self.cfg.challenge_timeout_s)
            return verdict
        blinks = self.blink.blinks if lmk106 is None else self.blink.update(eye_openness(lmk106), t_s)
        self.yaws.append(yaw_proxy_deg(kps))
        if blinks >= 1 and self._turned() and self._passive_ok():
            return Verdict.LIVE
        return self._pending_or_spoof(t_s, self.cfg.window_s)

    def _pending_or_spoof(self, t_s: float, limit_s: float) -> Verdict:
        return Verdict.SPOOF if t_s - self.started > limit_s else Verdict.PENDING

    def _turned(self) -> bool:
        if not self.cfg.require_head_turn:
            return True
        return bool(self.yaws) and max(self.yaws) - min(self.yaws) >= self.cfg.head_turn_deg

    def _passive_ok(self) -> bool:
        if self.passive is None:
            return True
        return len(self.passive_scores) >= 3 and float(np.median(self.passive_scores)) >= self.cfg.passive_threshold
