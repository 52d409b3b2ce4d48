"""The enrolment outbox: faces enrolled on this kiosk, waiting to reach the hub.

Every enrolment made here is queued, whether or not the kiosk is registered yet: the agent sends
what is queued as soon as it has a registration. A row only points at template rows; the sender
gets the templates that still exist, and erasing a person deletes their unsent rows, so an erased
face is never sent.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kiosk.base.timeutil import iso_utc, utc_now

if TYPE_CHECKING:
    from kiosk.base.consent import Consent
    from kiosk.store.database import Store

DEVICE_SOURCE = "device"


class EnrolmentOutbox:
    """Unsent device enrolments of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def queue(self, employee_id: str, model_id: str, template_ids: list[int], method: str,
              consent: Consent) -> None:
        """Queue stored templates for the hub with the consent they were taken under (inside the caller's
        enrolment transaction); the consent is recorded here too."""
        now = iso_utc(utc_now())
        with self.store.atomic("queueing the enrolment for the hub") as db:
            db.execute("INSERT INTO consents (employee_id, kind, given_utc, text_version, language, taken_by, path, "
                       "recorded_utc) VALUES (?, 'given', ?, ?, ?, ?, ?, ?)",
                       [employee_id, consent.given_utc, consent.text_version, consent.language, consent.taken_by,
                        consent.path, now])
            db.execute("INSERT INTO enrolment_outbox (employee_id, model_id, template_ids, method, source, "
                       "created_utc, consent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [employee_id, model_id, json.dumps(template_ids), method, DEVICE_SOURCE, now,
                        json.dumps(consent.to_dict())])

    def consents(self, employee_id: str) -> list[dict[str, Any]]:
        """The consents (given, withdrawn) recorded on this kiosk for a person, oldest first."""
        return self.store.query("SELECT kind, given_utc, text_version, language, taken_by, path, recorded_utc "
                                "FROM consents WHERE employee_id = ? ORDER BY id", [employee_id])

    def drop(self, employee_id: str) -> int:
        """Forget a person's unsent enrolments; returns how many (the erase does this)."""
        with self.store.atomic("dropping unsent enrolments") as db:
            return db.execute("DELETE FROM enrolment_outbox WHERE employee_id = ? AND sent_utc IS NULL",
                              [employee_id]).rowcount

    def unsent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Unsent enrolments, oldest first: the outbox row, the person (name, branch, cards) and the
        templates that still exist (id, model id, vector, quality). A row whose person was erased or
        whose templates are all gone is skipped (``mark_sent`` it to drop it)."""
        rows = self.store.query("SELECT o.*, e.name, e.branch, e.active FROM enrolment_outbox o "
                                "JOIN employees e ON e.id = o.employee_id WHERE o.sent_utc IS NULL "
                                "ORDER BY o.id LIMIT ?", [limit])
        return [item for row in rows if (item := self._item(row)) is not None]

    def _item(self, row: dict[str, Any]) -> dict[str, Any] | None:
        ids = json.loads(row["template_ids"])
        marks = ", ".join("?" * len(ids))
        templates = self.store.query(f"SELECT id, model_id, vector, quality FROM templates WHERE id IN ({marks}) "
                                     "ORDER BY id", ids)
        if not row["active"] or not templates:
            return None
        import numpy as np  # only for templates: `kiosk punch` and the db commands start without numpy

        cards = [r["card_id"] for r in self.store.query("SELECT card_id FROM cards WHERE employee_id = ? "
                                                        "ORDER BY card_id", [row["employee_id"]])]
        return {"outbox_id": row["id"], "employee_id": row["employee_id"], "name": row["name"],
                "branch": row["branch"], "cards": cards, "method": row["method"], "source": row["source"],
                "created_utc": row["created_utc"],
                "consent": json.loads(row["consent"]) if row["consent"] else None,
                "templates": [{"id": t["id"], "model_id": t["model_id"], "quality": t["quality"],
                               "vector": np.frombuffer(t["vector"], dtype=np.float32).copy()} for t in templates]}

    def mark_sent(self, outbox_ids: list[int]) -> None:
        """Record that the hub has these enrolments (the agent calls this after the hub's answer)."""
        if not outbox_ids:
            return
        with self.store.atomic("marking enrolments sent") as db:
            now = iso_utc(utc_now())
            for outbox_id in outbox_ids:
                db.execute("UPDATE enrolment_outbox SET sent_utc = ? WHERE id = ?", [now, outbox_id])

    def count_unsent(self) -> int:
        """Enrolments not yet at the hub (device health)."""
        return self.store.query("SELECT count(*) AS n FROM enrolment_outbox WHERE sent_utc IS NULL")[0]["n"]
