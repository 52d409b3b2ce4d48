"""Consents to face templates at the hub (PIPL): recorded per person whatever the path, checked before any
template is stored, withdrawn with an erase everywhere (people.withdraw_consent)."""

from __future__ import annotations

from kiosk.base.consent import NO_CONSENT_FIX
from kiosk.base.errors import InvalidInput
from sync.hub.db.base import Tx
from sync.protocol import ConsentIn, ConsentOut

COLUMNS = "kind, given_utc, text_version, language, taken_by, path, recorded_utc"


def record(tx: Tx, employee_id: str, consent: ConsentIn, path: str, taken_by: str, now: str,
           device_id: str | None = None) -> None:
    """A consent given: by the person, when, to which text version, in which language, taken by whom, where."""
    tx.run("INSERT INTO consents (employee_id, kind, given_utc, text_version, language, taken_by, path, device_id, "
           "recorded_utc) VALUES (?, 'given', ?, ?, ?, ?, ?, ?, ?)",
           [employee_id, consent.given_utc, consent.text_version, consent.language, consent.taken_by or taken_by,
            path, device_id, now])


def record_withdrawal(tx: Tx, employee_id: str, when: str, taken_by: str, now: str) -> None:
    tx.run("INSERT INTO consents (employee_id, kind, given_utc, taken_by, path, recorded_utc) "
           "VALUES (?, 'withdrawn', ?, ?, 'withdraw', ?)", [employee_id, when, taken_by, now])


def current(tx: Tx, employee_id: str) -> bool:
    """A consent is on file and the person has not withdrawn it since."""
    row = tx.row("SELECT kind FROM consents WHERE employee_id = ? ORDER BY id DESC LIMIT 1", [employee_id])
    return row is not None and row["kind"] == "given"


def require(tx: Tx, employee_id: str, templates: int) -> None:
    """No consent, no template: refuse to store ``templates`` for someone without a current consent."""
    if templates and not current(tx, employee_id):
        raise InvalidInput(f"no consent to face recognition is on file for {employee_id}"
                           + (" (they withdrew it)" if withdrawn(tx, employee_id) else ""),
                           fix=NO_CONSENT_FIX + " With the HR API send consent {given_utc, text_version, language}"
                           " with the photos or templates; without photos the person is saved card-only.")


def withdrawn(tx: Tx, employee_id: str) -> bool:
    row = tx.row("SELECT kind FROM consents WHERE employee_id = ? ORDER BY id DESC LIMIT 1", [employee_id])
    return row is not None and row["kind"] == "withdrawn"


def listing(tx: Tx, employee_id: str) -> list[ConsentOut]:
    return [ConsentOut(**r) for r in tx.rows(f"SELECT {COLUMNS} FROM consents WHERE employee_id = ? ORDER BY id",
                                             [employee_id])]
