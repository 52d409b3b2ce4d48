"""FrameProcessor: the per-frame recognition loop of the daemon, with tracking across a walk-up.

``process(frame) -> FrameResult`` runs detect -> choose -> quality -> embed -> match -> vote, but
spends work only where it changes the outcome:

- nobody in view: one detector pass at the small ``face.idle_det_size_px``; only when the picture changed
  (the caller's motion gate: ``process(frame, moved=True)``) and that pass found nobody, one *search*
  pass at ``face.search_det_size_px`` follows, in turn upright and turned by +/-``face.search_roll_deg`` (a head
  tilted sideways), whose low-scored proposals (``face.search_score_min``: a masked or small face) count
  only once the region pass around them confirms them; an unchanged picture never pays for it;
- a face followed from the previous frame: detection only in the region around it
  (``face.track_det_size_px``), which is cheaper and gives sharper landmarks; lost there, the region
  turned upright by its landmarks when the head is tilted, then the region at ``face.det_size_px``;
- once the walk-up is decided (k of n frames agreed, or two strong frames in a row: kiosk.face.vote)
  the face is no longer embedded while it stays in view; once the caller has acted on it
  (``settle()``: punched, refused) the face is looked for only every ``face.settled_look_every_frames``
  frames, enough to notice the person leave; and after ``face.max_embeds_per_walkup`` embeddings
  without a decision it is reported ``UNKNOWN`` (not recognised: use the card) instead of being embedded forever.

A face the quality gate refuses only for a mask or sunglasses (``quality.covered_faces = advise``) or only
for reasons in ``quality.walkup_try_reasons`` (blurred, turned, occluded) is still embedded and matched
(kiosk.face.quality.worth_trying): recognised, it counts as any other frame; not recognised, it is ``ADJUST``
with those reasons, so the screen says what to change (lower the mask, hold still, look at the camera). Such
tries have a budget of their own (``face.max_embeds_per_walkup`` again), so faulted frames at the start of a
walk-up do not use up the good frames' budget; either budget spent ends the walk-up as ``UNKNOWN``.

Work the caller needs for a frame's face besides recognition (the pipeline's 106-point landmarks while the
liveness check still needs them) is handed in as ``process(frame, beside=...)``: it runs on the processor's
worker thread while this frame is aligned, judged, embedded and matched (when more than one core is usable;
else before them, on the caller's thread), and its value comes back as ``FrameResult.beside``.

A detector whose landmarks barely follow a tilted head (the OpenCV Zoo pack's YuNet) has the face of a frame
about to be judged and embedded looked at once more in its region turned each way (FaceEngine.levelled), so the
alignment levels a head rolled up to ``face.search_roll_deg``.

``FrameResult.passes`` names every detector pass a frame cost, in order ("idle", "search", "search+30",
"search-30", "region", "region_turned", "region_large": the region once more at ``face.det_size_px`` when
the small input lost the face, "full", and for such a detector "region+30", "region-30").

A walk-up ends when the face is not seen for ``face.track_grace_frames`` frames, or a different
face (no overlap with the followed one) is presented; the daemon's pipeline (kiosk.runtime.pipeline) adds liveness.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kiosk.face.calibration import strong_threshold
from kiosk.face.config import MatchConfig
from kiosk.face.engine import REGION_ROLL_MIN_DEG, FaceEngine, roll_deg
from kiosk.face.gallery import Gallery, Match
from kiosk.face.quality import worth_trying
from kiosk.face.types import Face, QualityReport
from kiosk.face.vote import Decision, FrameVote


class FrameState(enum.Enum):
    IDLE = "idle"              # nobody in view
    ADJUST = "adjust"          # a face, but the quality gate refused it (see quality.reasons)
    DECIDING = "deciding"      # matched this frame; not enough agreeing frames yet
    DECIDED = "decided"        # k of n frames agreed on one employee
    UNKNOWN = "unknown"        # gave up on this walk-up: not recognised


@dataclass(frozen=True)
class FrameResult:
    state: FrameState
    face: Face | None = None
    quality: QualityReport | None = None
    match: Match | None = None
    decision: Decision | None = None
    embedded: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    passes: tuple[str, ...] = ()
    beside: Any = None


Beside = Callable[[Face], Callable[[], Any] | None]
"""Asked on the caller's thread once a frame's followed face is known (not for a settled walk-up's frames): the
work to run beside that frame's recognition, or None."""


_worker: ThreadPoolExecutor | None = None
_worker_lock = threading.Lock()


def beside_worker() -> ThreadPoolExecutor:
    """The one thread of this process that runs callers' work beside recognition (started on first use and
    kept, so a walk-up's first frame does not pay for a new thread)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-beside")
        return _worker


# The most proposals of one search pass that get a region pass to confirm them (the best scored first).
SEARCH_PROPOSALS = 3


def iou(a: Face, b: Face) -> float:
    x1, y1 = max(a.bbox[0], b.bbox[0]), max(a.bbox[1], b.bbox[1])
    x2, y2 = min(a.bbox[2], b.bbox[2]), min(a.bbox[3], b.bbox[3])
    inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


class _Clock:
    """Accumulates per-stage wall and process-CPU milliseconds for one frame."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.cpu_ms: dict[str, float] = {}
        self._t, self._c = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self._t) * 1000
        self.cpu_ms[stage] = self.cpu_ms.get(stage, 0.0) + (cpu - self._c) * 1000
        self._t, self._c = now, cpu


class FrameProcessor:
    """Per-frame loop for one camera (not thread-safe: one camera thread calls process)."""

    def __init__(self, engine: FaceEngine, gallery: Gallery, match_cfg: MatchConfig | None = None) -> None:
        """``walkup_id`` counts walk-ups (it changes when a new face is followed); ``gallery`` may be
        replaced between frames when the roster changes."""
        self.engine = engine
        self.gallery = gallery
        self.cfg = engine.cfg
        match_cfg = match_cfg or gallery.cfg
        self.vote = FrameVote.from_config(match_cfg, strong_threshold(engine.pack, match_cfg))
        self._track: Face | None = None
        self._misses = 0
        self._settled = False
        self._unlooked = 0
        self._last: FrameResult | None = None
        self._embeds = 0
        self._tries = 0
        self._decided: Decision | None = None
        self._last_match: Match | None = None
        self._searches = 0
        self._passes: list[str] = []
        self.walkup_id = 0
        # A spare core runs the caller's work beside the embedding; on one core it runs first, in turn.
        self._spare_core = len(os.sched_getaffinity(0)) > 1

    def use_gallery(self, gallery: Gallery) -> None:
        """Search ``gallery`` from the next frame on (the roster changed), with the strong threshold its
        [match] calls for (its decision threshold may have moved with the roster's size)."""
        self.gallery = gallery
        self.vote.strong_threshold = strong_threshold(self.engine.pack, gallery.cfg)

    @property
    def tracking(self) -> bool:
        """Whether a face is being followed (a walk-up is in progress)."""
        return self._track is not None

    def reset(self) -> None:
        """End the current walk-up."""
        self._track, self._misses, self._embeds, self._decided, self._last_match = None, 0, 0, None, None
        self._tries = 0
        self._searches = 0  # a new walk-up is searched upright first (the likeliest)
        self._settled, self._unlooked, self._last = False, 0, None
        self.vote.reset()

    def settle(self) -> None:
        """The caller acted on this walk-up (punched, refused): from now on only notice when it ends."""
        if self._track is not None and self._last is not None:
            self._settled = True

    def _skip_look(self) -> bool:
        """Settled, and the face was there at the last look: look only every settled_look_every_frames frames."""
        if not self._settled or self._misses:
            return False
        self._unlooked += 1
        if self._unlooked < self.cfg.settled_look_every_frames:
            return True
        self._unlooked = 0
        return False

    def _find(self, frame: np.ndarray, moved: bool) -> Face | None:
        """The presented face, following the current walk-up when there is one."""
        engine, track, cfg = self.engine, self._track, self.cfg
        if track is not None:
            near = self._region(frame, track)
            if near:
                return max(near, key=lambda f: iou(f, track))
            self._passes.append("full")
            return engine.choose(engine.detect(frame), frame.shape)
        self._passes.append("idle")
        seen = engine.choose(engine.detect(frame, size=cfg.idle_det_size_px), frame.shape)
        if seen is None:
            return self._search(frame) if moved and cfg.search_det_size_px else None
        # Re-detect in the region for landmarks as sharp as a followed face gets.
        self._passes.append("region")
        return engine.choose(engine.detect_region(frame, seen), frame.shape) or seen

    def _region(self, frame: np.ndarray, around: Face) -> list[Face]:
        """The faces overlapping ``around`` in the region pass; when it finds none, the region turned upright
        (``around`` tilted sideways more than REGION_ROLL_MIN_DEG), then the region at det_size_px (a face the
        small input loses: a masked one scores lower, 15 % of them below det_score_min at 160 px)."""
        engine, cfg = self.engine, self.cfg
        steps = [(cfg.track_det_size_px, False, "region")]
        if abs(roll_deg(around)) > REGION_ROLL_MIN_DEG:
            steps.append((cfg.track_det_size_px, True, "region_turned"))
        if cfg.det_size_px > cfg.track_det_size_px:
            steps.append((cfg.det_size_px, False, "region_large"))
        for size, turned, name in steps:
            self._passes.append(name)
            near = [f for f in engine.detect_region(frame, around, size=size, turned=turned)
                    if iou(f, around) >= cfg.track_iou_min]
            if near:
                return near
        return []

    def _search(self, frame: np.ndarray) -> Face | None:
        """One search pass (upright or turned, in turn from frame to frame) at search_det_size_px and the low
        search_score_min; a proposal is a face only if the region pass around it finds it at det_score_min."""
        engine, cfg = self.engine, self.cfg
        rolls = (0.0, cfg.search_roll_deg, -cfg.search_roll_deg) if cfg.search_roll_deg else (0.0,)
        roll = rolls[self._searches % len(rolls)]
        self._searches += 1
        if roll:
            self._passes.append(f"search{roll:+g}")
            proposals = engine.detect_rolled(frame, roll, size=cfg.search_det_size_px, min_score=cfg.search_score_min)
        else:
            self._passes.append("search")
            proposals = engine.detect(frame, size=cfg.search_det_size_px, min_score=cfg.search_score_min)
        confirmed = [f for p in proposals[:SEARCH_PROPOSALS] for f in self._region(frame, p)]
        return engine.choose(confirmed, frame.shape)

    def _follow(self, face: Face | None) -> bool:
        """Update the walk-up with this frame's face; False when nobody is (any longer) in view."""
        if face is None:
            # A settled walk-up was not looked at in between: those frames count as misses too, and from
            # now on every frame is looked at, so it ends as soon as an unsettled one would.
            self._misses += self.cfg.settled_look_every_frames if self._settled and not self._misses else 1
            if self._track is not None and self._misses > self.cfg.track_grace_frames:
                self.reset()
            return False
        if self._track is None or iou(face, self._track) < self.cfg.track_iou_min:
            self.reset()
            self.walkup_id += 1
        self._track, self._misses = face, 0
        return True

    def process(self, frame: np.ndarray, moved: bool = True, beside: Beside | None = None) -> FrameResult:
        """One frame. ``moved``: the picture changed since the last look (the caller's motion gate); while
        nobody is followed, only a changed picture pays for a search pass when the idle pass finds nobody.
        ``beside``: the caller's work for the followed face, run beside recognition (module docstring)."""
        clock = _Clock()
        self._passes = []
        if self._skip_look():
            clock.lap("detect")
            result = self._settled_result(clock, self._track)
        else:
            face = self._find(frame, moved)
            clock.lap("detect")
            if not self._follow(face):
                result = FrameResult(FrameState.IDLE, timings_ms=clock.ms, cpu_ms=clock.cpu_ms)
            elif self._settled:
                result = self._settled_result(clock, face)
            else:
                work = beside(face) if beside is not None else None
                pending = self._start(work, clock)
                result = self._last = self._evaluate(frame, face, clock)
                if isinstance(pending, Future):
                    pending = pending.result()
                    clock.lap("beside")  # the wait for it beyond recognition
                result = replace(result, beside=pending, timings_ms=clock.ms, cpu_ms=clock.cpu_ms)
        return replace(result, passes=tuple(self._passes))

    def _start(self, work: Callable[[], Any] | None, clock: _Clock) -> Any:
        """The caller's work for this frame: handed to the worker thread (a Future) when a spare core can run
        it beside recognition, else done now (its value)."""
        if work is None:
            return None
        if self._spare_core:
            return beside_worker().submit(work)
        value = work()
        clock.lap("beside")
        return value

    def _settled_result(self, clock: _Clock, face: Face | None) -> FrameResult:
        """A settled walk-up's frame: where the face is, and the walk-up's last verdict (nothing is embedded)."""
        return replace(self._last, face=face, embedded=False, timings_ms=clock.ms, cpu_ms=clock.cpu_ms)

    def _worth_trying(self, report: QualityReport) -> bool:
        """A refused face is still matched when the recogniser may see past every reason (worth_trying)."""
        return worth_trying(report, self.engine.quality_cfg)

    def _evaluate(self, frame: np.ndarray, face: Face, clock: _Clock) -> FrameResult:
        """quality -> embed -> match -> vote for the followed face (once decided: the decision)."""
        if self._decided is not None:
            return FrameResult(FrameState.DECIDED, face, decision=self._decided, timings_ms=clock.ms,
                               cpu_ms=clock.cpu_ms)
        if max(self._embeds, self._tries) >= self.cfg.max_embeds_per_walkup:
            return FrameResult(FrameState.UNKNOWN, face, match=self._last_match, timings_ms=clock.ms,
                               cpu_ms=clock.cpu_ms)
        face, passes = self.engine.levelled(frame, face)  # a tilted head's landmarks, for the alignment
        self._passes.extend(passes)
        clock.lap("detect")
        aligned = self.engine.align(frame, face)  # once, on the levelled landmarks: judged, then embedded
        report = self.engine.assess_quality(frame, face, walkup=True, aligned=aligned)
        clock.lap("quality")
        if not report.ok and not self._worth_trying(report):
            return FrameResult(FrameState.ADJUST, face, report, timings_ms=clock.ms, cpu_ms=clock.cpu_ms)
        vector = self.engine.embed_aligned(aligned)
        if report.ok:
            self._embeds += 1
        else:
            self._tries += 1
        clock.lap("embed")
        match = self._last_match = self.gallery.search(vector)
        if not report.ok and not match.accepted:
            # Refused, tried and not recognised: say what to change (the vote learns nothing).
            return FrameResult(FrameState.ADJUST, face, report, match, embedded=True, timings_ms=clock.ms,
                               cpu_ms=clock.cpu_ms)
        decision = self.vote.push(match)
        clock.lap("match")
        if decision.decided:
            self._decided = decision
        state = FrameState.DECIDED if decision.decided else FrameState.DECIDING
        return FrameResult(state, face, report, match, decision, True, clock.ms, clock.cpu_ms)
