"""A field punch's face verdict: the clip's, judged live with the face 1:1 against the employee's templates
(sync/hub/field/liveness.py: online piece by piece, offline whole)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaceVerdict:
    match: bool
    score: float | None
    reason: str  # why not, in a sentence (never a name or a vector)
