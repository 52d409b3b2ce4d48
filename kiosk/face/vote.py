"""FrameVote: accept an employee when they win k of the last n evaluated frames, or sooner on strong evidence.

One lucky frame never punches: ``push(match)`` records the frame's accepted employee (or None)
and returns a ``Decision``; ``decided`` turns true once one employee holds ``k`` of the last ``n``
votes, or once ``strong_frames`` consecutive frames accepted the same employee at or above the
pack's calibrated ``strong_threshold`` (kiosk.face.calibration): a score no stranger reached on the
calibration set, so two such frames in a row decide a walk-up without waiting for a third.
``reset()`` starts a new walk-up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from kiosk.face.config import MatchConfig
from kiosk.face.gallery import Match


@dataclass(frozen=True)
class Decision:
    """The vote after one more frame: the leading employee, their votes, and whether it is decided."""

    employee_id: str | None
    votes: int
    frames: int
    decided: bool
    score: float
    strong: bool = False  # decided by consecutive strong frames rather than k of n


class FrameVote:
    """k-of-n vote over the last n frames that reached the matcher, with a strong-evidence shortcut."""

    def __init__(self, k: int, n: int, strong_threshold: float | None = None, strong_frames: int = 2) -> None:
        if not 1 <= k <= n:
            raise ValueError("need 1 <= k <= n")
        if strong_frames < 2:
            raise ValueError("a strong decision needs at least 2 frames")
        self.k, self.n = k, n
        self.strong_threshold, self.strong_frames = strong_threshold, strong_frames
        self._window: deque[tuple[str | None, float]] = deque(maxlen=n)

    @classmethod
    def from_config(cls, cfg: MatchConfig, strong_threshold: float | None = None) -> FrameVote:
        """The vote of [match]; ``strong_threshold`` is the calibrated one (None: k of n only)."""
        return cls(cfg.vote_k, cfg.vote_n, strong_threshold, cfg.strong_frames)

    def push(self, match: Match | None) -> Decision:
        """Add one frame's result (an unaccepted match or None counts as a vote for nobody)."""
        accepted = match is not None and match.accepted
        self._window.append((match.employee_id if accepted else None, match.score if accepted else 0.0))
        tally: dict[str, list[float]] = {}
        for employee_id, score in self._window:
            if employee_id is not None:
                tally.setdefault(employee_id, []).append(score)
        if not tally:
            return Decision(None, 0, len(self._window), False, 0.0)
        leader, scores = max(tally.items(), key=lambda item: (len(item[1]), max(item[1])))
        strong = self._strong_run(leader)
        decided = len(scores) >= self.k or strong
        return Decision(leader, len(scores), len(self._window), decided, max(scores), strong and len(scores) < self.k)

    def _strong_run(self, employee_id: str) -> bool:
        """Whether the newest ``strong_frames`` frames all accepted ``employee_id`` at the strong threshold."""
        if self.strong_threshold is None or len(self._window) < self.strong_frames:
            return False
        recent = list(self._window)[-self.strong_frames:]
        return all(e == employee_id and s >= self.strong_threshold for e, s in recent)

    def reset(self) -> None:
        self._window.clear()
