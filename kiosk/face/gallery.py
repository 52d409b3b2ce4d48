"""The gallery: every template of every employee in one contiguous matrix, searched 1:N.

``Gallery(model_id, cfg)`` holds L2-normalised float32 rows; an employee may have several
templates and scores as the best of theirs. ``search(vector) -> Match`` returns the top employee,
the cosine score, the margin over the best *other* employee, and whether the open-set threshold
and margin accept it (``reason`` says why not). Templates of another recognition model are
refused (``ModelMismatch``). ``add``/``remove`` change rows in place (remove moves the last rows
into the gap), so the matrix is never rebuilt; it grows by doubling. Above
``match.exact_search_max`` templates a coarse int8 index picks candidates for an exact re-rank
(see kiosk.face.coarse).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kiosk.base.errors import ModelMismatch
from kiosk.base.vectors import unit_vector
from kiosk.face.coarse import CoarseIndex
from kiosk.face.config import MatchConfig

if TYPE_CHECKING:
    from kiosk.store.roster import Roster, Template

log = logging.getLogger(__name__)

INITIAL_CAPACITY = 1024
NO_TEMPLATE = -1
NO_EMPLOYEE = -1


@dataclass(frozen=True)
class Match:
    """One frame's 1:N result. ``reason``: match, below_threshold, ambiguous, or empty_gallery."""

    employee_id: str | None
    score: float
    margin: float
    accepted: bool
    reason: str
    runner_up: str | None = None

    def to_dict(self) -> dict:
        return {"employee_id": self.employee_id, "score": round(self.score, 4), "margin": round(self.margin, 4),
                "accepted": self.accepted, "reason": self.reason}


def normalised(vector: np.ndarray, dim: int) -> np.ndarray:
    return unit_vector(vector, dim)


class Gallery:
    """Templates of one recognition model (see the module docstring)."""

    def __init__(self, model_id: str, cfg: MatchConfig | None = None, dim: int = 512, threads: int = 2) -> None:
        self.model_id = model_id
        self.cfg = cfg or MatchConfig()
        self.dim = dim
        self.threads = threads
        self._vecs = np.zeros((INITIAL_CAPACITY, dim), np.float32)
        self._emp = np.full(INITIAL_CAPACITY, NO_EMPLOYEE, np.int32)
        self._tpl = np.full(INITIAL_CAPACITY, NO_TEMPLATE, np.int64)
        self._count = 0
        self._emp_index: dict[str, int] = {}
        self._emp_ids: list[str] = []
        self._coarse: CoarseIndex | None = None

    @classmethod
    def from_roster(cls, roster: Roster, model_id: str, cfg: MatchConfig | None = None,
                    threads: int = 2) -> Gallery:
        """All templates of active employees made by ``model_id`` (others are left out, see pack_change)."""
        gallery = cls(model_id, cfg, threads=threads)
        for template in roster.templates(model_id):
            gallery.add_template(template)
        gallery.prepare()
        return gallery

    def __len__(self) -> int:
        return self._count

    @property
    def employees(self) -> int:
        """Employees with at least one template. Counted with bincount: numpy 2's np.unique imports numpy.ma on
        its first call (~15 ms of CPU before the daemon is ready), for a count of small non-negative indexes."""
        return int(np.count_nonzero(np.bincount(self._emp[: self._count])))

    # -- changes ---------------------------------------------------------

    def add_template(self, template: Template) -> int:
        """Add a stored template; refuses one made by another recognition model."""
        return self.add(template.employee_id, template.vector, template_id=template.id, model_id=template.model_id)

    def add(self, employee_id: str, vector: np.ndarray, template_id: int = NO_TEMPLATE,
            model_id: str | None = None) -> int:
        """Append one template; returns its row."""
        if model_id is not None and model_id != self.model_id:
            raise ModelMismatch(
                f"template of {employee_id} was made by model {model_id[:12]}, not the running model "
                f"{self.model_id[:12]}; embeddings of different models are never compared",
                fix="Re-enrol the person with `kiosk enroll add`, or let the hub re-compute templates "
                "for this model.")
        vec = normalised(vector, self.dim)
        if self._count == len(self._vecs):
            self._grow()
        row = self._count
        self._vecs[row] = vec
        self._emp[row] = self._employee_index(employee_id)
        self._tpl[row] = template_id
        self._count += 1
        if self._coarse is not None:
            self._coarse.set_row(row, vec)
        return row

    def add_many(self, employee_ids: list[str], vectors: np.ndarray) -> None:
        """Append many templates at once (bulk loads and benchmarks)."""
        vecs = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        while self._count + len(vecs) > len(self._vecs):
            self._grow()
        rows = slice(self._count, self._count + len(vecs))
        self._vecs[rows] = vecs
        self._emp[rows] = [self._employee_index(e) for e in employee_ids]
        self._tpl[rows] = NO_TEMPLATE
        self._count += len(vecs)
        self._coarse = None

    def remove(self, employee_id: str) -> int:
        """Drop every template of an employee; returns how many were removed."""
        index = self._emp_index.get(employee_id)
        if index is None:
            return 0
        rows = np.nonzero(self._emp[: self._count] == index)[0]
        self._drop_rows(rows)
        return len(rows)

    def _drop_rows(self, rows: np.ndarray) -> None:
        for row in sorted(rows.tolist(), reverse=True):
            last = self._count - 1
            if row != last:
                self._vecs[row], self._emp[row], self._tpl[row] = self._vecs[last], self._emp[last], self._tpl[last]
                if self._coarse is not None:
                    self._coarse.move_row(last, row)
            self._emp[last], self._tpl[last] = NO_EMPLOYEE, NO_TEMPLATE
            self._count -= 1

    def _employee_index(self, employee_id: str) -> int:
        index = self._emp_index.get(employee_id)
        if index is None:
            index = self._emp_index[employee_id] = len(self._emp_ids)
            self._emp_ids.append(employee_id)
        return index

    def _grow(self) -> None:
        capacity = 2 * len(self._vecs)
        vecs = np.zeros((capacity, self.dim), np.float32)
        vecs[: self._count] = self._vecs[: self._count]
        emp = np.full(capacity, NO_EMPLOYEE, np.int32)
        emp[: self._count] = self._emp[: self._count]
        tpl = np.full(capacity, NO_TEMPLATE, np.int64)
        tpl[: self._count] = self._tpl[: self._count]
        self._vecs, self._emp, self._tpl = vecs, emp, tpl
        if self._coarse is not None:
            self._coarse.grow(capacity)

    # -- search ----------------------------------------------------------

    def prepare(self) -> None:
        """Build the coarse index now if the gallery needs one (else the first search builds it)."""
        n = self._count
        if n > self.cfg.exact_search_max and self._coarse is None:
            self._coarse = CoarseIndex(self._vecs[:n], len(self._vecs), self.threads)

    def _candidates(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, exact scores) to decide from: all rows, or the coarse index's best re-scored."""
        n = self._count
        if n <= self.cfg.exact_search_max:
            # einsum, not BLAS: BLAS threads stall for a scheduler tick on a busy 2-core box.
            return np.arange(n), np.einsum("ij,j->i", self._vecs[:n], vec)
        self.prepare()
        rows = self._coarse.candidates(vec, n, self.cfg.rerank_k)
        return rows, np.einsum("ij,j->i", self._vecs[rows], vec)

    def search(self, vector: np.ndarray) -> Match:
        """Best employee for one embedding, with the margin over the best other employee."""
        if self._count == 0:
            return Match(None, 0.0, 0.0, False, "empty_gallery")
        vec = normalised(vector, self.dim)
        rows, scores = self._candidates(vec)
        best = int(np.argmax(scores))
        best_emp = self._emp[rows[best]]
        others = np.where(self._emp[rows] == best_emp, -2.0, scores)
        second = int(np.argmax(others))
        # With nobody else to compare, an unrelated face scores about 0.
        second_score = float(others[second]) if others[second] > -2 else 0.0
        runner_up = self._emp_ids[self._emp[rows[second]]] if others[second] > -2 else None
        score = float(scores[best])
        margin = score - second_score
        if score < self.cfg.threshold:
            reason = "below_threshold"
        elif margin < self.cfg.margin:
            reason = "ambiguous"
        else:
            reason = "match"
        return Match(self._emp_ids[best_emp], score, margin, reason == "match", reason, runner_up)

    def best_of(self, vector: np.ndarray, employee_id: str) -> float | None:
        """The best score of ``vector`` against one employee's templates (None if they have none)."""
        index = self._emp_index.get(employee_id)
        if index is None:
            return None
        rows = np.nonzero(self._emp[: self._count] == index)[0]
        if len(rows) == 0:
            return None
        return float(np.max(self._vecs[rows] @ normalised(vector, self.dim)))


def pack_change(roster: Roster, model_id: str) -> str | None:
    """A sentence when stored templates were made by another model than the running one, else None."""
    counts = roster.model_ids()
    stale = {mid: n for mid, n in counts.items() if mid != model_id}
    if not stale:
        return None
    current = counts.get(model_id, 0)
    listed = ", ".join(f"{n} of model {mid[:12]}" for mid, n in sorted(stale.items()))
    return (f"the face model changed: {sum(stale.values())} stored template(s) ({listed}) cannot be used "
            f"with the running model {model_id[:12]} ({current} template(s) usable). Re-enrol those "
            "people with `kiosk enroll add --photos ...`, or have the hub re-compute their templates for "
            "the new model; until then they can punch only by card.")
