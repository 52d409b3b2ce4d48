"""Is the face on a field punch's selfie the employee's? 1:1 against their templates on the hub, with the
hub's template maker (the kiosk's face engine and photo rule, sync/hub/faces.py) and the kiosk's threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sync.hub.db.base import HubDb
from sync.hub.faces import TemplateMaker


@dataclass(frozen=True)
class FaceVerdict:
    match: bool
    score: float | None
    reason: str  # why not, in a sentence (never a name or a vector)


def verify_face(db: HubDb, maker: TemplateMaker, employee_id: str, photo: bytes) -> FaceVerdict:
    """The best score of the selfie against the employee's templates of each model the hub can compute."""
    models = maker.model_ids()
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT model_id, vector FROM templates WHERE employee_id = ?", [employee_id])
    usable = sorted({r["model_id"] for r in rows} & set(models))
    if not usable:
        return FaceVerdict(False, None, "no face templates of this employee for the hub's face model: "
                           "ask HR to add a photo")
    best: tuple[float, float] | None = None
    for model_id in usable:
        made = maker.make(photo, model_id)
        if isinstance(made, str):
            return FaceVerdict(False, None, f"selfie not usable: {made}")
        vectors = np.stack([np.frombuffer(bytes(r["vector"]), dtype="<f4") for r in rows
                            if r["model_id"] == model_id])
        score = float(np.max(vectors @ made.vector.astype(np.float32)))
        threshold = maker.threshold(model_id, 1)
        if best is None or score - threshold > best[0] - best[1]:
            best = (score, threshold)
    assert best is not None
    score, threshold = best
    if score < threshold:
        return FaceVerdict(False, round(score, 4), "the face does not match this phone's owner")
    return FaceVerdict(True, round(score, 4), "")
