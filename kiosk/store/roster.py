"""Employees, their cards and their face templates, as stored on this kiosk."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hardware.rfid_protocols import CARD_TEXT_FORMS, CardFormat, FrameError, canonical_card
from kiosk.base.errors import Conflict, InvalidInput, NotFound
from kiosk.base.text import check_name
from kiosk.base.timeutil import iso_utc, utc_now

if TYPE_CHECKING:
    import numpy as np

    from kiosk.store.database import Store

log = logging.getLogger(__name__)

EMPLOYEE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_CARD_FORMAT: CardFormat = "dec10"


@dataclass(frozen=True)
class Employee:
    id: str
    name: str
    active: bool
    branch: str | None
    cards: tuple[str, ...] = ()
    templates: int = 0
    best_quality: float | None = None
    card_and_face: bool = False  # punches with card + face whatever punch.mode says (a look-alike)


@dataclass(frozen=True)
class Template:
    id: int
    employee_id: str
    model_id: str
    vector: np.ndarray
    quality: float | None
    source: str


def check_employee_id(employee_id: str) -> str:
    if not EMPLOYEE_ID_RE.match(employee_id or ""):
        raise InvalidInput(f"employee id {employee_id!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit (no spaces)",
                           fix="Type the id as HR issued it, e.g. E007 or branch-17.")
    return employee_id


def normalise_card(card: str, card_format: CardFormat = DEFAULT_CARD_FORMAT) -> str:
    """The stored id of a card given by a person, a CSV or the hub: the id the readers report for it in
    ``card_format`` (rfid.card_format), so a card added as 4000 matches the reader's 0000004000."""
    try:
        return canonical_card(card, card_format)
    except FrameError:
        raise InvalidInput(f"card number {card!r} is not valid: give {CARD_TEXT_FORMS[card_format]}",
                           fix=f"Use the number printed on the card or the one `kiosk hw read rfid` shows; "
                           f"it is stored as rfid.card_format = {card_format!r}.") from None


class Roster:
    """Employees, cards and templates of one store."""

    def __init__(self, store: Store, card_format: CardFormat = DEFAULT_CARD_FORMAT) -> None:
        self.store = store
        self.card_format = card_format

    def normalise_card(self, card: str) -> str:
        """``normalise_card`` in this kiosk's card format: every way a card comes in goes through it."""
        return normalise_card(card, self.card_format)

    # -- employees -------------------------------------------------------

    def add(self, employee_id: str, name: str, branch: str | None = None,
            cards: tuple[str, ...] = (), actor: str = "admin", exist_ok: bool = False) -> Employee:
        """Add an employee (or with ``exist_ok`` update the name/branch and add cards)."""
        check_employee_id(employee_id)
        name = check_name(name)
        cards = tuple(self.normalise_card(c) for c in cards)
        now = iso_utc(utc_now())
        with self.store.atomic("adding the employee") as db:
            row = db.execute("SELECT active FROM employees WHERE id = ?", [employee_id]).fetchone()
            if row is not None and not exist_ok:
                raise Conflict(f"employee {employee_id} already exists",
                               fix="Use another id, or `kiosk enroll add` to add photos to this person.")
            if row is None:
                db.execute("INSERT INTO employees (id, name, active, branch, created_utc, updated_utc) "
                           "VALUES (?, ?, 1, ?, ?, ?)", [employee_id, name, branch, now, now])
            else:
                db.execute("UPDATE employees SET name = ?, active = 1, branch = coalesce(?, branch), "
                           "updated_utc = ? WHERE id = ?", [name, branch, now, employee_id])
            for card in cards:
                self._insert_card(db, employee_id, card, now)
            self.store.audit(actor, "employee.add" if row is None else "employee.update", employee_id,
                             cards=len(cards))
        return self.get(employee_id)

    def _insert_card(self, db, employee_id: str, card: str, now: str) -> None:  # noqa: ANN001
        owner = db.execute("SELECT employee_id FROM cards WHERE card_id = ?", [card]).fetchone()
        if owner is not None and owner[0] != employee_id:
            raise Conflict(f"card {card} already belongs to employee {owner[0]}",
                           fix=f"Remove it from {owner[0]} first (`kiosk employee remove-card`).")
        if owner is None:
            db.execute("INSERT INTO cards (card_id, employee_id, created_utc) VALUES (?, ?, ?)",
                       [card, employee_id, now])

    def add_card(self, employee_id: str, card: str, actor: str = "admin") -> str:
        card = self.normalise_card(card)
        self.require(employee_id)
        with self.store.atomic("adding the card") as db:
            self._insert_card(db, employee_id, card, iso_utc(utc_now()))
            self.store.audit(actor, "card.add", employee_id)
        return card

    def remove_card(self, card: str, actor: str = "admin") -> str:
        card = self.normalise_card(card)
        with self.store.atomic("removing the card") as db:
            owner = db.execute("SELECT employee_id FROM cards WHERE card_id = ?", [card]).fetchone()
            if owner is None:
                raise NotFound(f"card {card} is not registered on this kiosk",
                               fix="Check the number with `kiosk employee list` (cards are listed per person).")
            db.execute("DELETE FROM cards WHERE card_id = ?", [card])
            self.store.audit(actor, "card.remove", owner[0])
        return owner[0]

    def set_card_and_face(self, employee_id: str, required: bool, actor: str = "admin", reason: str = "") -> None:
        """Make a person punch with card + face (or no longer), whatever punch.mode says."""
        self.require(employee_id)
        with self.store.atomic("changing how the employee punches") as db:
            db.execute("UPDATE employees SET card_and_face = ?, updated_utc = ? WHERE id = ?",
                       [int(required), iso_utc(utc_now()), employee_id])
            self.store.audit(actor, "employee.card_and_face_" + ("on" if required else "off"), employee_id,
                             reason=reason)

    def by_card(self, card: str) -> Employee | None:
        try:
            card = self.normalise_card(card)
        except InvalidInput:
            return None
        rows = self.store.query("SELECT e.id FROM cards c JOIN employees e ON e.id = c.employee_id "
                                "WHERE c.card_id = ? AND e.active = 1", [card])
        return self.get(rows[0]["id"]) if rows else None

    def get(self, employee_id: str) -> Employee | None:
        rows = self.list(employee_id=employee_id, include_inactive=True)
        return rows[0] if rows else None

    def require(self, employee_id: str) -> Employee:
        employee = self.get(employee_id)
        if employee is None or not employee.active:
            raise NotFound(f"no employee {employee_id!r} on this kiosk",
                           fix="Check the id with `kiosk employee list`.")
        return employee

    def list(self, employee_id: str | None = None, include_inactive: bool = False,
             search: str | None = None) -> list[Employee]:
        sql = ("SELECT e.*, (SELECT group_concat(card_id) FROM cards c WHERE c.employee_id = e.id) AS cards, "
               "(SELECT count(*) FROM templates t WHERE t.employee_id = e.id) AS n_templates, "
               "(SELECT max(quality) FROM templates t WHERE t.employee_id = e.id) AS best_quality "
               "FROM employees e WHERE 1 = 1")
        params: list = []
        if employee_id is not None:
            sql += " AND e.id = ?"
            params.append(employee_id)
        if not include_inactive:
            sql += " AND e.active = 1"
        if search:
            sql += " AND (e.id LIKE ? OR e.name LIKE ?)"
            params += [f"%{search}%", f"%{search}%"]
        rows = self.store.query(sql + " ORDER BY e.id", params)
        return [Employee(r["id"], r["name"], bool(r["active"]), r["branch"],
                         tuple(sorted((r["cards"] or "").split(","))) if r["cards"] else (),
                         r["n_templates"], r["best_quality"], bool(r["card_and_face"])) for r in rows]

    def erase(self, employee_id: str, actor: str = "admin", reason: str = "") -> dict[str, int]:
        """Erase a person's templates and cards for real; their punches stay (attendance law).

        Inside a caller's transaction the WAL is folded into the file by the caller, after its commit.
        """
        self.require(employee_id)
        with self.store.atomic("erasing the employee") as db:
            templates = self._wipe_templates(db, employee_id)
            self.store.enrolments.drop(employee_id)
            cards = db.execute("DELETE FROM cards WHERE employee_id = ?", [employee_id]).rowcount
            db.execute("UPDATE employees SET active = 0, updated_utc = ? WHERE id = ?",
                       [iso_utc(utc_now()), employee_id])
            self.store.audit(actor, "employee.erase", employee_id, templates=templates, cards=cards,
                             reason=reason)
        if not self.store.conn.in_transaction:
            self.store.checkpoint()
        return {"templates": templates, "cards": cards}

    @staticmethod
    def _wipe_templates(db, employee_id: str, source: str | None = None) -> int:  # noqa: ANN001
        """The one secure erase of face templates (all of a person's, or those of one source): the
        vectors are overwritten before the rows are deleted, so with secure_delete no copy is left in
        the file's free pages; a checkpoint afterwards does the same for the WAL."""
        where, params = "employee_id = ?", [employee_id]
        if source is not None:
            where, params = where + " AND source = ?", [*params, source]
        db.execute(f"UPDATE templates SET vector = zeroblob(length(vector)) WHERE {where}", params)
        return db.execute(f"DELETE FROM templates WHERE {where}", params).rowcount

    def replace_from_hub(self, employee_id: str, name: str, branch: str, cards: list[str],
                         templates: list[tuple[str, np.ndarray, float | None]], source: str,
                         erase_own: bool = False) -> int:
        """Make a person what the hub says: name, branch and cards, and exactly these templates of
        ``source`` (older ones erased); templates enrolled here are kept unless ``erase_own``. Returns
        templates stored."""
        now = iso_utc(utc_now())
        cards = sorted(self._usable_cards(employee_id, cards))
        with self.store.atomic("applying the hub's record of an employee") as db:
            db.execute("INSERT INTO employees (id, name, active, branch, created_utc, updated_utc) "
                       "VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, active = 1, "
                       "branch = excluded.branch, updated_utc = excluded.updated_utc",
                       [employee_id, name, branch, now, now])
            db.execute(f"DELETE FROM cards WHERE employee_id = ? OR card_id IN ({', '.join('?' * len(cards))})",
                       [employee_id, *cards])
            for card in cards:
                db.execute("INSERT INTO cards (card_id, employee_id, created_utc) VALUES (?, ?, ?)",
                           [card, employee_id, now])
            self._wipe_templates(db, employee_id, None if erase_own else source)
            for model_id, vec, quality in templates:
                db.execute("INSERT INTO templates (employee_id, model_id, dim, vector, quality, source, created_utc) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", [employee_id, model_id, int(vec.size), vec.tobytes(),
                                                            quality, source, now])
        return len(templates)

    def _usable_cards(self, employee_id: str, cards: list[str]) -> set[str]:
        """The hub's cards in this kiosk's form; one that cannot be read as a card is skipped, not fatal."""
        usable = set()
        for card in cards:
            try:
                usable.add(self.normalise_card(card))
            except InvalidInput as exc:
                log.warning("skipping a card of %s from the hub: %s", employee_id, exc.what)
        return usable

    def renormalise_cards(self) -> int:
        """Rewrite cards stored before every way in normalised them (``4000`` -> ``0000004000``), so
        the readers' ids match; returns how many were rewritten. Ids that cannot be read, or whose
        normal form belongs to someone else, are left as they are and logged."""
        rewritten = 0
        with self.store.atomic("normalising stored card numbers") as db:
            for row in db.execute("SELECT card_id, employee_id FROM cards").fetchall():
                card, owner = row
                try:
                    normal = self.normalise_card(card)
                except InvalidInput:
                    log.warning("card ...%s of %s cannot be read as a %s card; it cannot match a reader",
                                card[-4:], owner, self.card_format)
                    continue
                if normal == card:
                    continue
                if db.execute("SELECT 1 FROM cards WHERE card_id = ?", [normal]).fetchone():
                    log.warning("card ...%s of %s is stored twice (as typed and as read); kept the read form",
                                card[-4:], owner)
                    continue
                db.execute("UPDATE cards SET card_id = ? WHERE card_id = ?", [normal, card])
                rewritten += 1
            if rewritten:
                self.store.audit("kiosk", "card.normalise", "", cards=rewritten, card_format=self.card_format)
        return rewritten

    def has_templates(self, employee_id: str, model_id: str) -> bool:
        """True when an active person has templates of this model."""
        rows = self.store.query("SELECT count(*) AS n FROM templates t JOIN employees e ON e.id = t.employee_id "
                                "WHERE e.active = 1 AND t.employee_id = ? AND t.model_id = ?",
                                [employee_id, model_id])
        return rows[0]["n"] > 0

    # -- templates -------------------------------------------------------

    def add_template(self, employee_id: str, model_id: str, vector: np.ndarray, quality: float | None,
                     source: str) -> int:
        import numpy as np  # only for templates: `kiosk punch` and the db commands start without numpy

        vec = np.asarray(vector, dtype=np.float32).ravel()
        if vec.size == 0 or not np.all(np.isfinite(vec)):
            raise InvalidInput("template vector is empty or holds non-finite values")
        self.require(employee_id)
        with self.store.atomic("storing the template") as db:
            cur = db.execute("INSERT INTO templates (employee_id, model_id, dim, vector, quality, source, "
                             "created_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [employee_id, model_id, int(vec.size), vec.tobytes(), quality, source,
                              iso_utc(utc_now())])
            return int(cur.lastrowid)

    def templates(self, model_id: str | None = None) -> list[Template]:
        """Templates of active employees (of one model id when given)."""
        sql = ("SELECT t.* FROM templates t JOIN employees e ON e.id = t.employee_id WHERE e.active = 1")
        params: list = []
        if model_id is not None:
            sql += " AND t.model_id = ?"
            params.append(model_id)
        rows = self.store.query(sql + " ORDER BY t.id", params)
        import numpy as np  # only for templates (see add_template)

        return [Template(r["id"], r["employee_id"], r["model_id"],
                         np.frombuffer(r["vector"], dtype=np.float32).copy(), r["quality"], r["source"])
                for r in rows]

    def signature(self) -> tuple[int, int]:
        """Changes whenever an active person's template is added or removed (the daemon reloads its gallery)."""
        row = self.store.query("SELECT count(*) AS n, coalesce(max(t.id), 0) AS m FROM templates t "
                               "JOIN employees e ON e.id = t.employee_id WHERE e.active = 1")[0]
        return (row["n"], row["m"])

    def model_ids(self) -> dict[str, int]:
        rows = self.store.query("SELECT model_id, count(*) AS n FROM templates GROUP BY model_id")
        return {r["model_id"]: r["n"] for r in rows}
