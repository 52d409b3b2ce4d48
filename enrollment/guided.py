"""Guided capture at a camera: live guidance from the quality gate, several varied samples taken
automatically, a 1:N duplicate check before saving, then a self-test ("look again" -> recognised).

``GuidedEnrolment.feed(image)`` is called for every camera frame (by the daemon's inference thread
or the `kiosk enroll add --camera` loop); the admin's answers (``confirm``, ``cancel``,
``retry_selftest``) may come from another thread, so every method takes the one lock.
Guidance, warnings and failures are stable names (``guide.*``, ``warning.*``, ``failure.*`` in
the UI catalogues), never sentences: the screen and the terminal translate them.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from enrollment.photos import DIFFERENT_PERSON_MAX, LookAlike, look_alikes
from kiosk.base.errors import KioskError
from kiosk.face.config import MatchConfig
from kiosk.face.engine import FaceEngine
from kiosk.face.gallery import Gallery
from kiosk.face.quality import estimate_pose
from kiosk.face.types import Face
from kiosk.face.vote import FrameVote

log = logging.getLogger(__name__)

# Which quality problem to tell the person about first: the one whose fix also fixes others
# (a face half out of the picture is also small and badly lit...).
GUIDANCE_BY_REASON = (
    ("cut_off", "centre_face"), ("too_small", "move_closer"), ("pose", "face_camera"),
    ("too_dark", "too_dark"), ("too_bright", "too_bright"), ("sunglasses", "remove_sunglasses"),
    ("mask", "lower_mask"), ("occluded", "uncover_face"),
    ("blurry", "blurry"),
)


class Phase(enum.StrEnum):
    CAPTURING = "capturing"    # taking samples; ``guidance`` says what the person should do
    CONFIRM = "confirm"        # samples taken, but ``warning`` needs the admin's yes or no
    SELF_TEST = "self_test"    # saved; "look again" until recognised or timed out
    DONE = "done"              # saved and recognised
    FAILED = "failed"          # see ``failure``; nothing more happens until retried or cancelled
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class GuidedSettings:
    """How many samples, how different they must be, how long each step may take."""

    samples: int = 5
    min_pose_change_deg: float = 6.0       # a new sample differs by this much head turn/tilt...
    max_sample_similarity: float = 0.93    # ...or its embedding is at most this close to every other
    min_interval_s: float = 0.3            # between two samples, so the person can move
    capture_timeout_s: float = 60.0
    selftest_timeout_s: float = 15.0


@dataclass(frozen=True)
class Person:
    """Who is being enrolled (checked by the caller before the capture starts)."""

    employee_id: str
    name: str
    branch: str | None = None
    cards: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    vector: np.ndarray
    quality: float
    yaw_deg: float
    pitch_deg: float


@dataclass(frozen=True)
class DuplicateWarning:
    """Why the admin must confirm: ``kind`` is other_employee or not_same_person."""

    kind: str
    employee_id: str
    score: float
    name: str | None = None


@dataclass(frozen=True)
class Observation:
    """What one frame showed, for the live preview: the face box and whether it was usable."""

    face: Face | None
    usable: bool


@dataclass
class Progress:
    """A snapshot for the screen or the terminal (plain data, JSON-ready via ``to_dict``)."""

    phase: Phase
    guidance: str | None
    samples: int
    samples_needed: int
    warning: DuplicateWarning | None = None
    failure: str | None = None
    failure_detail: str = ""
    recognised_as: str | None = None
    templates_saved: int = 0
    extra: dict = field(default_factory=dict)
    look_alikes: tuple[LookAlike, ...] = ()

    def to_dict(self) -> dict:
        warning = None
        if self.warning is not None:
            warning = {"kind": self.warning.kind, "employee_id": self.warning.employee_id,
                       "name": self.warning.name, "score": round(self.warning.score, 3)}
        return {"phase": self.phase.value, "guidance": self.guidance, "samples": self.samples,
                "samples_needed": self.samples_needed, "warning": warning, "failure": self.failure,
                "failure_detail": self.failure_detail, "recognised_as": self.recognised_as,
                "templates_saved": self.templates_saved,
                "look_alikes": [{"employee_id": a.employee_id, "score": round(a.score, 3)} for a in self.look_alikes],
                **self.extra}


def guidance_for(reasons: tuple[str, ...]) -> str:
    """The one instruction to show for a quality report's reasons."""
    for reason, guidance in GUIDANCE_BY_REASON:
        if reason in reasons:
            return guidance
    return "hold_still"


def find_warning(samples: list[Sample], gallery: Gallery, employee_id: str,
                 threshold: float) -> DuplicateWarning | None:
    """1:N duplicate check: does any sample match another employee (at the recognition threshold),
    or do the samples not match this employee's own stored templates?"""
    worst: DuplicateWarning | None = None
    for sample in samples:
        match = gallery.search(sample.vector)
        candidates = [(match.employee_id, match.score)]
        if match.runner_up is not None:
            candidates.append((match.runner_up, match.score - match.margin))
        for other, score in candidates:
            if other and other != employee_id and score >= threshold and (worst is None or score > worst.score):
                worst = DuplicateWarning("other_employee", other, score)
    if worst is not None:
        return worst
    own = [gallery.best_of(s.vector, employee_id) for s in samples]
    own = [score for score in own if score is not None]
    if own and max(own) < DIFFERENT_PERSON_MAX:
        return DuplicateWarning("not_same_person", employee_id, max(own))
    return None


class GuidedEnrolment:
    """One person's guided enrolment, frame by frame (see the module docstring).

    ``save(samples) -> int`` stores the templates and returns how many; ``selftest_gallery()``
    returns a gallery that holds them (built after saving). Both are supplied by the caller, so
    the same flow runs in the daemon and in the terminal.
    """

    def __init__(self, engine: FaceEngine, gallery: Gallery, person: Person, match_cfg: MatchConfig,
                 save: Callable[[list[Sample], list[LookAlike]], int], selftest_gallery: Callable[[], Gallery],
                 settings: GuidedSettings | None = None, names: Callable[[str], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.gallery, self.person = engine, gallery, person
        self.match_cfg = match_cfg
        self.settings = settings or GuidedSettings()
        self._save, self._selftest_gallery = save, selftest_gallery
        self._names = names or (lambda _employee_id: None)
        self._clock = clock
        self._lock = threading.RLock()
        self.phase = Phase.CAPTURING
        self.guidance: str | None = "look_at_camera"
        self.samples: list[Sample] = []
        self.taken = 0
        self.warning: DuplicateWarning | None = None
        self.failure: str | None = None
        self.failure_detail = ""
        self.recognised_as: str | None = None
        self.templates_saved = 0
        self.look_alikes: list[LookAlike] = []
        self._phase_started = clock()
        self._last_sample_at = -1e9
        self._vote: FrameVote | None = None
        self._test_gallery: Gallery | None = None

    # -- frames ------------------------------------------------------------------------------

    def feed(self, image: np.ndarray) -> Observation:
        """Look at one frame in the current phase; returns what it showed (for the preview)."""
        with self._lock:
            if self.phase not in (Phase.CAPTURING, Phase.SELF_TEST):
                return Observation(None, False)
            if self._timed_out():
                return Observation(None, False)
            face, guidance = self._presented_face(image)
            if face is None:
                self.guidance = guidance
                return Observation(None, False)
            report = self.engine.assess_quality(image, face)
            if not report.ok:
                self.guidance = guidance_for(report.reasons)
                return Observation(face, False)
            vector = self.engine.embed(image, face)
            if self.phase is Phase.CAPTURING:
                self._offer_sample(face, vector, report.score)
            else:
                self._self_test(vector)
            return Observation(face, True)

    def _presented_face(self, image: np.ndarray) -> tuple[Face | None, str]:
        faces = self.engine.detect(image)
        if not faces:
            return None, "look_at_camera"
        face = self.engine.choose(faces, image.shape)
        if self.engine.crowded(faces, face):
            return None, "one_person"
        return face, ""

    def _timed_out(self) -> bool:
        limit = (self.settings.capture_timeout_s if self.phase is Phase.CAPTURING
                 else self.settings.selftest_timeout_s)
        if self._clock() - self._phase_started <= limit:
            return False
        self._fail("capture_timeout" if self.phase is Phase.CAPTURING else "selftest_failed")
        return True

    def _offer_sample(self, face: Face, vector: np.ndarray, quality: float) -> None:
        yaw, pitch = estimate_pose(face.kps)
        sample = Sample(vector, quality, yaw, pitch)
        if self.samples:
            sims = [float(np.dot(vector, s.vector)) for s in self.samples]
            if max(sims) < DIFFERENT_PERSON_MAX:
                self.guidance = "not_same_person"
                return
            turned = min(max(abs(yaw - s.yaw_deg), abs(pitch - s.pitch_deg)) for s in self.samples)
            if max(sims) > self.settings.max_sample_similarity and turned < self.settings.min_pose_change_deg:
                self.guidance = "turn_slightly"
                return
            if self._clock() - self._last_sample_at < self.settings.min_interval_s:
                return
        self.samples.append(sample)
        self.taken += 1
        self._last_sample_at = self._clock()
        self.guidance = "good"
        if len(self.samples) >= self.settings.samples:
            self._samples_complete()

    def _samples_complete(self) -> None:
        warning = find_warning(self.samples, self.gallery, self.person.employee_id, self.gallery.cfg.threshold)
        if warning is not None:
            self.warning = DuplicateWarning(warning.kind, warning.employee_id, warning.score,
                                            self._names(warning.employee_id))
            self.phase, self.guidance = Phase.CONFIRM, None
            log.info("enrolment of %s: samples match %s (%s, score %.2f); asking the admin",
                     self.person.employee_id, warning.employee_id, warning.kind, warning.score)
            return
        self._store()

    # -- the admin's answers -----------------------------------------------------------------

    def confirm(self, proceed: bool) -> None:
        """The admin's answer to the duplicate warning: save anyway, or drop the samples."""
        with self._lock:
            if self.phase is not Phase.CONFIRM:
                return
            if proceed:
                self._store()
            else:
                self.phase, self.samples = Phase.CANCELLED, []

    def cancel(self) -> None:
        with self._lock:
            if self.phase in (Phase.CAPTURING, Phase.CONFIRM):
                self.samples = []
            if self.phase not in (Phase.DONE, Phase.FAILED):
                self.phase = Phase.CANCELLED

    def retry_selftest(self) -> None:
        """After a failed self-test of saved templates: look again."""
        with self._lock:
            if self.phase is Phase.FAILED and self.templates_saved:
                self._start_selftest()

    # -- saving and the self-test ------------------------------------------------------------

    def _store(self) -> None:
        # Saved despite matching another employee (the admin confirmed they are different people):
        # look-alikes, who both punch with card + face from now on (enrollment.saving).
        found = look_alikes([s.vector for s in self.samples], self.gallery, self.person.employee_id)
        try:
            self.templates_saved = self._save(list(self.samples), found)
            self.look_alikes = found
        except KioskError as exc:
            self._fail("save_failed", exc.what)
            return
        self.samples = []  # the vectors now live only in the encrypted store
        self._test_gallery = self._selftest_gallery()
        self._start_selftest()

    def _start_selftest(self) -> None:
        self._vote = FrameVote.from_config(self.match_cfg)
        self.phase, self.guidance, self.recognised_as = Phase.SELF_TEST, "look_again", None
        self._phase_started = self._clock()

    def _self_test(self, vector: np.ndarray) -> None:
        match = self._test_gallery.search(vector)
        decision = self._vote.push(match)
        self.guidance = "look_again"
        if not decision.decided:
            return
        self.recognised_as = decision.employee_id
        if decision.employee_id == self.person.employee_id:
            self.phase, self.guidance = Phase.DONE, None
        else:
            self._fail("selftest_other", decision.employee_id)

    def _fail(self, failure: str, detail: str = "") -> None:
        self.phase, self.failure, self.failure_detail, self.guidance = Phase.FAILED, failure, detail, None
        log.info("enrolment of %s: %s %s", self.person.employee_id, failure, detail)

    # -- reading -----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.DONE, Phase.FAILED, Phase.CANCELLED)

    def progress(self) -> Progress:
        with self._lock:
            # A phase that ran out of time says so even when no frame arrives to notice it.
            if self.phase in (Phase.CAPTURING, Phase.SELF_TEST):
                self._timed_out()
            return Progress(self.phase, self.guidance, self.taken, self.settings.samples, self.warning, self.failure,
                            self.failure_detail, self.recognised_as, self.templates_saved,
                            {"employee_id": self.person.employee_id, "name": self.person.name},
                            tuple(self.look_alikes))
