"""What the hub holds about one person, for an access request (PIPL): templates per model (counts, dates,
sources; never a vector), faces enrolled at kiosks, consents, cards, branches and their punches in summary."""

from __future__ import annotations

from kiosk.base.timeutil import iso_utc, utc_now
from sync.hub import consents, people
from sync.hub.db.base import HubDb
from sync.protocol import ModelHeld, PersonReport, PunchesHeld


def person_report(db: HubDb, employee_id: str) -> PersonReport:
    with db.transaction(write=False) as tx:
        emp = people.employee_record(tx, employee_id)
        models: dict[str, ModelHeld] = {}
        for r in tx.rows("SELECT model_id, source, count(*) AS n, min(created_utc) AS first, max(created_utc) AS last "
                         "FROM templates WHERE employee_id = ? GROUP BY model_id, source ORDER BY model_id, source",
                         [employee_id]):
            held = models.setdefault(r["model_id"], ModelHeld(model_id=r["model_id"], templates=0, sources={},
                                                                first_utc=r["first"], last_utc=r["last"]))
            held.templates += r["n"]
            held.sources[r["source"]] = r["n"]
            held.first_utc, held.last_utc = min(held.first_utc, r["first"]), max(held.last_utc, r["last"])
        punches = tx.row("SELECT count(*) AS n, min(ts_utc) AS first, max(ts_utc) AS last, "
                         "count(DISTINCT device_id) AS devices FROM punches WHERE employee_id = ?", [employee_id])
        given = consents.listing(tx, employee_id)
        on_file = consents.current(tx, employee_id)
    return PersonReport(employee_id=emp.employee_id, name=emp.name, active=emp.active, branches=emp.branches,
                        cards=emp.cards, templates=list(models.values()), device_templates=emp.device_templates,
                        consents=given, consent_current=on_file,
                        punches=PunchesHeld(count=punches["n"], first_utc=punches["first"], last_utc=punches["last"],
                                            devices=punches["devices"]),
                        generated_utc=iso_utc(utc_now()))
