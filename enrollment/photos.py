"""Photo -> checked template, or the reason it is refused: the rule shared by every enrolment path.

``check_photo(engine, image, ...) -> PhotoCheck``: exactly one presenting face, passing the quality
gate, and — when a gallery is given — not already someone else's face and not a different person
from the employee's other templates. ``PhotoCheck.reason`` is a stable name (no_face,
several_faces, poor_quality, other_employee, not_same_person, unreadable) for the UI to translate;
``detail`` is an English sentence. ``best_photos`` picks the PHOTO_TEMPLATES_KEPT a person's enrolment keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.base.errors import InvalidInput
from kiosk.face.engine import FaceEngine
from kiosk.face.gallery import Gallery
from kiosk.face.images import image_files, read_image
from kiosk.face.quality import REASON_TEXT
from kiosk.face.types import Face, QualityReport

log = logging.getLogger(__name__)

# Photo enrolment keeps this many of a person's usable photos, the best by quality score: templates from
# worse photos add little recognition but each is one more chance for a stranger's face to score high.
PHOTO_TEMPLATES_KEPT = 3
# Cosine below which a new photo is taken to show a different person than the employee's stored
# templates. Far below the match threshold on purpose: same-person photos years apart can score
# 0.2-0.4, while different people stay under ~0.3 (bench accuracy on ../shared/faces).
DIFFERENT_PERSON_MAX = 0.2


@dataclass(frozen=True)
class LookAlike:
    """Another enrolled employee whose templates score at or above the decision threshold against this
    person's: the engine cannot tell the two apart (twins, siblings, look-alikes)."""

    employee_id: str
    score: float


def look_alikes(vectors: list[np.ndarray], gallery: Gallery, employee_id: str) -> list[LookAlike]:
    """Other employees in ``gallery`` that any of ``vectors`` (this person's templates) matches at the
    gallery's decision threshold, best score first: both must then punch with card + face."""
    best: dict[str, float] = {}
    for vector in vectors:
        match = gallery.search(vector)
        candidates = [(match.employee_id, match.score)]
        if match.runner_up is not None:
            candidates.append((match.runner_up, match.score - match.margin))
        for other, score in candidates:
            if other and other != employee_id and score >= gallery.cfg.threshold:
                best[other] = max(score, best.get(other, -1.0))
    return [LookAlike(e, s) for e, s in sorted(best.items(), key=lambda item: -item[1])]


def look_alike_sentence(employee_id: str, found: list[LookAlike], threshold: float) -> str:
    """What the admin is told (ids and scores, never names: this also goes to the log)."""
    others = ", ".join(f"{a.employee_id} (score {a.score:.2f})" for a in found)
    return (f"look-alike: {employee_id} matches {others} at or above the decision threshold {threshold:.3f}; "
            f"the kiosk cannot tell them apart, so {employee_id} and {', '.join(a.employee_id for a in found)} "
            "now punch with card + face")


@dataclass(frozen=True)
class PhotoCheck:
    """The verdict on one photo; ``vector`` is set only when ``ok``."""

    source: str
    ok: bool
    reason: str | None = None
    detail: str = ""
    vector: np.ndarray | None = None
    quality: QualityReport | None = None
    face: Face | None = None

    def to_dict(self) -> dict:
        return {"photo": self.source, "ok": self.ok, "reason": self.reason, "detail": self.detail,
                "quality": list(self.quality.reasons) if self.quality else None,
                "quality_score": self.quality.score if self.quality else None}


def refuse(source: str, reason: str, detail: str, **extra: object) -> PhotoCheck:
    return PhotoCheck(source, False, reason, detail, **extra)


def expand_photos(paths: list[Path]) -> list[Path]:
    """Photo files named directly, plus the image files inside any folder named."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += image_files(path)
        else:
            out.append(path)
    return out


def _identity_problem(source: str, vector: np.ndarray, gallery: Gallery, employee_id: str | None,
                      threshold: float, look_alike_ok: bool = False) -> PhotoCheck | None:
    match = gallery.search(vector)
    if match.employee_id is not None and match.employee_id != employee_id and match.score >= threshold \
            and not look_alike_ok:
        return refuse(source, "other_employee",
                      f"this face matches employee {match.employee_id} (score {match.score:.2f}); "
                      "check it is the right person's photo. If they are different people (twins, siblings, "
                      "look-alikes), enrol with card + face (`--card-and-face`): both then punch with card and face")
    own = gallery.best_of(vector, employee_id) if employee_id else None
    if own is not None and own < DIFFERENT_PERSON_MAX:
        return refuse(source, "not_same_person",
                      f"this face does not match {employee_id}'s other photos (best score {own:.2f})")
    return None


def check_photo(engine: FaceEngine, image: np.ndarray, source: str, gallery: Gallery | None = None,
                employee_id: str | None = None, look_alike_ok: bool = False) -> PhotoCheck:
    """Detect, gate and embed one photo for enrolment; refuse with a named reason when unfit.
    ``look_alike_ok``: a face matching another employee is kept (the caller flags both as look-alikes)."""
    face, faces = engine.photo_face(image)  # only the chosen face levelled: the others are only counted
    if face is None:
        return refuse(source, "no_face", "no face was found in the photo")
    if engine.crowded(faces, face):
        return refuse(source, "several_faces",
                      f"{len(faces)} faces are in the photo; use one showing only this person", face=face)
    report = engine.assess_quality(image, face)
    if not report.ok:
        detail = "; ".join(REASON_TEXT[r] for r in report.reasons)
        return refuse(source, "poor_quality", detail, quality=report, face=face)
    vector = engine.embed(image, face)
    if gallery is not None:
        problem = _identity_problem(source, vector, gallery, employee_id, gallery.cfg.threshold, look_alike_ok)
        if problem is not None:
            return PhotoCheck(problem.source, False, problem.reason, problem.detail, quality=report, face=face)
    return PhotoCheck(source, True, vector=vector, quality=report, face=face)


def best_photos(checks: list[PhotoCheck],
                keep: int = PHOTO_TEMPLATES_KEPT) -> tuple[list[PhotoCheck], list[PhotoCheck]]:
    """(kept, spare) of the usable photos among ``checks``: the ``keep`` with the best quality score (on a tie
    the earlier photo), in their given order, and the other usable ones."""
    usable = [c for c in checks if c.ok]
    chosen = best_of(usable, lambda c: c.quality.score, keep)
    return ([c for i, c in enumerate(usable) if i in chosen], [c for i, c in enumerate(usable) if i not in chosen])


def best_of(items: list, quality: Callable[[Any], float | None], keep: int = PHOTO_TEMPLATES_KEPT) -> set[int]:
    """Positions of the ``keep`` items of best ``quality`` (none counts as lowest; on a tie the earlier one):
    the photo enrolment rule, for the kiosk's checks and the hub's templates alike."""
    ranked = sorted(range(len(items)), key=lambda i: (-(quality(items[i]) or 0.0), i))
    return set(ranked[:keep])


def check_photo_file(engine: FaceEngine, path: Path, gallery: Gallery | None = None,
                     employee_id: str | None = None, look_alike_ok: bool = False) -> PhotoCheck:
    """check_photo on a file; an unreadable file is a refusal, not an error."""
    try:
        image = read_image(path)
    except InvalidInput as exc:
        return refuse(str(path), "unreadable", exc.what)
    return check_photo(engine, image, str(path), gallery, employee_id, look_alike_ok)
