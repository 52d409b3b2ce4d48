"""Storing an enrolment made on this device: employee, cards, templates and the audit record in one
transaction, plus an entry in the enrolment outbox for the hub (source 'device') when sync is set up.

The outbox (`enrolment_outbox`, migration ui_enrolment_outbox) only points at template rows; the
sync agent sends the unsent rows whose templates still exist and sets ``sent_utc``. Erasing a
person deletes their unsent rows, so an erased face is never sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kiosk.base.timeutil import iso_utc, utc_now

log = logging.getLogger(__name__)

DEVICE_SOURCE = "device"


@dataclass(frozen=True)
class NewTemplate:
    """One vector to store, its quality score and where it came from (template ``source``)."""

    vector: np.ndarray
    quality: float | None
    source: str


def sync_configured(store, config) -> bool:  # noqa: ANN001 - Store, KioskConfig
    """True when this kiosk talks to a hub: a hub URL in [sync] or a stored registration."""
    if config.sync.hub_url:
        return True
    return bool(store.query("SELECT count(*) AS n FROM sync_registration")[0]["n"])


def store_enrolment(store, config, employee_id: str, name: str, branch: str | None,  # noqa: ANN001
                    cards: Iterable[str], model_id: str, templates: list[NewTemplate], method: str,
                    actor: str) -> list[int]:
    """Add or update the employee and store the templates; queue them for the hub; returns their ids."""
    queue = sync_configured(store, config)
    with store.atomic("saving the enrolment") as db:
        store.roster.add(employee_id, name, branch or config.device.branch, tuple(cards), actor=actor,
                         exist_ok=True)
        ids = [store.roster.add_template(employee_id, model_id, t.vector, t.quality, t.source) for t in templates]
        if queue and ids:
            db.execute("INSERT INTO enrolment_outbox (employee_id, model_id, template_ids, method, source, "
                       "created_utc) VALUES (?, ?, ?, ?, ?, ?)",
                       [employee_id, model_id, json.dumps(ids), method, DEVICE_SOURCE, iso_utc(utc_now())])
        store.audit(actor, f"enroll.{method}", employee_id, templates=len(ids), model_id=model_id[:12],
                    queued_for_hub=queue)
    log.info("enrolled %s: %d template(s) (%s)%s", employee_id, len(ids), method,
             ", queued for the hub" if queue else "")
    return ids


def drop_unsent(store, employee_id: str) -> int:  # noqa: ANN001 - Store
    """Forget an erased person's enrolments that were not sent yet; returns how many."""
    with store.atomic("dropping unsent enrolments") as db:
        return db.execute("DELETE FROM enrolment_outbox WHERE employee_id = ? AND sent_utc IS NULL",
                          [employee_id]).rowcount


def unsent(store, limit: int = 100) -> list[dict]:  # noqa: ANN001 - Store
    """Unsent enrolments, oldest first, for the sync agent: the outbox row, the person (name, branch,
    cards) and the templates that still exist (id, model id, vector, quality). A row whose person
    was erased or whose templates are all gone is skipped (``mark_sent`` it to drop it)."""
    rows = store.query("SELECT o.*, e.name, e.branch, e.active FROM enrolment_outbox o "
                       "JOIN employees e ON e.id = o.employee_id WHERE o.sent_utc IS NULL ORDER BY o.id LIMIT ?",
                       [limit])
    out = []
    for row in rows:
        ids = json.loads(row["template_ids"])
        marks = ", ".join("?" * len(ids))
        templates = store.query(f"SELECT id, model_id, vector, quality FROM templates WHERE id IN ({marks}) "
                                "ORDER BY id", ids)
        if not row["active"] or not templates:
            continue
        cards = [r["card_id"] for r in store.query("SELECT card_id FROM cards WHERE employee_id = ? ORDER BY card_id",
                                                   [row["employee_id"]])]
        out.append({"outbox_id": row["id"], "employee_id": row["employee_id"], "name": row["name"],
                    "branch": row["branch"], "cards": cards, "method": row["method"], "source": row["source"],
                    "created_utc": row["created_utc"],
                    "templates": [{"id": t["id"], "model_id": t["model_id"], "quality": t["quality"],
                                   "vector": np.frombuffer(t["vector"], dtype=np.float32).copy()} for t in templates]})
    return out


def mark_sent(store, outbox_ids: list[int]) -> None:  # noqa: ANN001 - Store
    """Record that the hub has these enrolments (the agent calls this after the hub's answer)."""
    if not outbox_ids:
        return
    with store.atomic("marking enrolments sent") as db:
        now = iso_utc(utc_now())
        for outbox_id in outbox_ids:
            db.execute("UPDATE enrolment_outbox SET sent_utc = ? WHERE id = ?", [now, outbox_id])


def count_unsent(store) -> int:  # noqa: ANN001 - Store
    """Enrolments not yet at the hub (device health)."""
    return store.query("SELECT count(*) AS n FROM enrolment_outbox WHERE sent_utc IS NULL")[0]["n"]
