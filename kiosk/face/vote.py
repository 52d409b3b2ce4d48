"""FrameVote: accept an employee only when they win k of the last n evaluated frames.

One lucky frame never punches: ``push(match)`` records the frame's accepted employee (or None)
and returns a ``Decision``; ``decided`` turns true once one employee holds ``k`` of the last ``n``
votes. ``reset()`` starts a new walk-up.
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


class FrameVote:
    """k-of-n vote over the last n frames that reached the matcher."""

    def __init__(self, k: int, n: int) -> None:
        if not 1 <= k <= n:
            raise ValueError("need 1 <= k <= n")
        self.k, self.n = k, n
        self._window: deque[tuple[str | None, float]] = deque(maxlen=n)

    @classmethod
    def from_config(cls, cfg: MatchConfig) -> FrameVote:
        return cls(cfg.vote_k, cfg.vote_n)

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
        return Decision(leader, len(scores), len(self._window), len(scores) >= self.k, max(scores))

    def reset(self) -> None:
        self._window.clear()
