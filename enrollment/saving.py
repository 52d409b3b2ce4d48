"""Storing an enrolment made on this device: employee, cards, templates, the audit record and an entry
in the enrolment outbox for the hub, in one transaction. Every enrolment is queued, registered or not:
the sync agent sends the queue once the kiosk has a hub (kiosk.store.enrolments).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kiosk.base.consent import NO_CONSENT_FIX, Consent
from kiosk.base.errors import InvalidInput

if TYPE_CHECKING:
    from enrollment.photos import LookAlike

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewTemplate:
    """One vector to store, its quality score and where it came from (template ``source``)."""

    vector: np.ndarray
    quality: float | None
    source: str


def store_enrolment(store, config, employee_id: str, name: str, branch: str | None,  # noqa: ANN001
                    cards: Iterable[str], model_id: str, templates: list[NewTemplate], method: str,
                    actor: str, look_alikes: Sequence[LookAlike] = (), card_and_face: bool = False,
                    consent: Consent | None = None) -> list[int]:
    """Add or update the employee and store the templates; queue them for the hub with the person's consent
    (recorded here); returns their ids. No consent, no template: templates without a consent are refused;
    without templates the person and cards are saved (card-only).

    ``look_alikes`` (enrollment.photos.look_alikes): other employees the engine cannot tell from this
    one; this person and each of them then punch with card + face, in the same transaction. With
    ``card_and_face`` this person does so anyway (the admin's choice)."""
    if templates and consent is None:
        raise InvalidInput(f"no consent to face recognition recorded for {employee_id}", fix=NO_CONSENT_FIX)
    with store.atomic("saving the enrolment"):
        store.roster.add(employee_id, name, branch or config.device.branch, tuple(cards), actor=actor,
                         exist_ok=True)
        ids = [store.roster.add_template(employee_id, model_id, t.vector, t.quality, t.source) for t in templates]
        if ids:
            store.enrolments.queue(employee_id, model_id, ids, method, consent)
        store.audit(actor, f"enroll.{method}", employee_id, templates=len(ids), model_id=model_id[:12])
        if look_alikes or card_and_face:
            store.roster.set_card_and_face(employee_id, True, actor, reason="look-alike" if look_alikes else "admin")
        for other in look_alikes:
            store.roster.set_card_and_face(other.employee_id, True, actor,
                                           reason=f"look-alike of {employee_id} (score {other.score:.2f})")
    log.info("enrolled %s: %d template(s) (%s), queued for the hub", employee_id, len(ids), method)
    if look_alikes:
        log.warning("enrolment of %s: look-alike of %s; both now punch with card + face", employee_id,
                    ", ".join(a.employee_id for a in look_alikes))
    return ids
