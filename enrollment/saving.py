"""Storing an enrolment made on this device: employee, cards, templates, the audit record and an entry
in the enrolment outbox for the hub, in one transaction. Every enrolment is queued, registered or not:
the sync agent sends the queue once the kiosk has a hub (kiosk.store.enrolments).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewTemplate:
    """One vector to store, its quality score and where it came from (template ``source``)."""

    vector: np.ndarray
    quality: float | None
    source: str


def store_enrolment(store, config, employee_id: str, name: str, branch: str | None,  # noqa: ANN001
                    cards: Iterable[str], model_id: str, templates: list[NewTemplate], method: str,
                    actor: str) -> list[int]:
    """Add or update the employee and store the templates; queue them for the hub; returns their ids."""
    with store.atomic("saving the enrolment"):
        store.roster.add(employee_id, name, branch or config.device.branch, tuple(cards), actor=actor,
                         exist_ok=True)
        ids = [store.roster.add_template(employee_id, model_id, t.vector, t.quality, t.source) for t in templates]
        if ids:
            store.enrolments.queue(employee_id, model_id, ids, method)
        store.audit(actor, f"enroll.{method}", employee_id, templates=len(ids), model_id=model_id[:12])
    log.info("enrolled %s: %d template(s) (%s), queued for the hub", employee_id, len(ids), method)
    return ids
