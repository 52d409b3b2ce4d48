"""Bulk enrolment from a roster CSV and a folder of photos (`kiosk enroll import`).

The CSV has a header row with the columns ``id, name, card, branch, photos`` (``card`` and
``branch`` may be empty; several cards or photos are separated by ``;``). Every row is tried, one
transaction each: a row is enrolled with the photos that pass (``enrollment.photos`` rules plus a
same-person check across the row's photos), skipped when the person already has templates of the
running model, or failed with a reason. Each photo's verdict is kept for the report.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from enrollment.photos import DIFFERENT_PERSON_MAX, PhotoCheck, best_photos, check_photo_file, refuse
from enrollment.saving import NewTemplate, store_enrolment
from kiosk.base.consent import Consent
from kiosk.base.errors import InvalidInput, KioskError
from kiosk.base.timeutil import iso_utc, parse_iso
from kiosk.face.engine import FaceEngine
from kiosk.face.gallery import Gallery
from kiosk.store.roster import check_employee_id, check_name

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id", "name", "photos")
ALIASES = {"employee_id": "id", "employee": "id", "photo": "photos", "cards": "card", "card_id": "card"}
LIST_SEPARATOR = re.compile(r"[;|]")
BRANCH_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class RosterRow:
    """One CSV row as given (``line`` is the file's line number, the header being line 1)."""

    line: int
    employee_id: str
    name: str
    cards: tuple[str, ...]
    branch: str | None
    photos: tuple[str, ...]
    consent: str = ""  # when the person consented to face recognition (date or ISO time); empty: card-only


@dataclass
class RowOutcome:
    """What happened to one row: ``status`` enrolled, card_only (no consent: person and cards only), skipped or
    failed (``problem`` says why)."""

    row: RosterRow
    status: str = "failed"
    problem: str = ""
    templates: int = 0
    checks: list[PhotoCheck] = field(default_factory=list)
    spare: list[PhotoCheck] = field(default_factory=list)  # usable, but not among the best kept

    @property
    def refused(self) -> list[PhotoCheck]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {"line": self.row.line, "employee_id": self.row.employee_id, "status": self.status,
                "problem": self.problem, "templates": self.templates,
                "photos": [{**c.to_dict(), "photo": Path(c.source).name,
                            "kept": c.ok and not any(c is s for s in self.spare)} for c in self.checks]}


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in LIST_SEPARATOR.split(value or "") if part.strip())


def read_roster(path: Path) -> list[RosterRow]:
    """Parse the CSV; a missing column is an error for the whole file (nothing is imported)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"roster file {path} does not exist", fix="Check the --csv path.") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"roster file {path} is not UTF-8 text", fix="Save the CSV as UTF-8.") from None
    reader = csv.DictReader(text.splitlines())
    columns = {ALIASES.get(c.strip().lower(), c.strip().lower()): c for c in reader.fieldnames or []}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInput(f"{path} lacks the column(s) {', '.join(missing)}",
                           fix="The first row must name the columns: id,name,card,branch,photos.")

    def cell(raw: dict, name: str) -> str:
        return (raw.get(columns[name]) or "").strip() if name in columns else ""

    return [RosterRow(reader.line_num, cell(raw, "id"), cell(raw, "name"), _split(cell(raw, "card")),
                      cell(raw, "branch") or None, _split(cell(raw, "photos")), cell(raw, "consent"))
            for raw in reader if any((v or "").strip() for v in raw.values() if isinstance(v, str))]


class RosterImport:
    """Imports rows one by one against one engine, gallery and store."""

    def __init__(self, engine: FaceEngine, gallery: Gallery, store, config, photo_dir: Path,  # noqa: ANN001
                 skip_existing: bool = True, actor: str = "admin", consent_taken_by: str | None = None,
                 consent_language: str = "zh", consent_date: str = "") -> None:
        self.engine, self.gallery, self.store, self.config = engine, gallery, store, config
        self.photo_dir = photo_dir
        self.skip_existing, self.actor = skip_existing, actor
        self.consent_taken_by, self.consent_language = consent_taken_by, consent_language
        self.consent_date = consent_date  # for rows whose consent cell is empty (a CSV without the column)
        self._seen: dict[str, int] = {}

    def import_row(self, row: RosterRow) -> RowOutcome:
        outcome = RowOutcome(row)
        try:
            self._check_row(row)
            consent = self._consent(row)
        except InvalidInput as exc:
            outcome.problem = exc.what
            return outcome
        if consent is None:
            return self._card_only(row, outcome)
        if self.skip_existing and self.store.roster.has_templates(row.employee_id, self.engine.model_id):
            outcome.status, outcome.problem = "skipped", "already has face templates of this model"
            return outcome
        outcome.checks = self._check_photos(row)
        usable, outcome.spare = best_photos(outcome.checks)
        if not usable:
            outcome.problem = f"none of the {len(outcome.checks)} photo(s) was usable"
            return outcome
        templates = [NewTemplate(c.vector, c.quality.score, f"photo:{Path(c.source).name}") for c in usable]
        try:
            store_enrolment(self.store, self.config, row.employee_id, row.name, row.branch, row.cards,
                            self.engine.model_id, templates, "import", self.actor, consent=consent)
        except KioskError as exc:
            outcome.problem = exc.what
            return outcome
        for check in usable:  # later rows are checked against this person too
            self.gallery.add(row.employee_id, check.vector)
        outcome.status, outcome.templates = "enrolled", len(usable)
        return outcome

    def _consent(self, row: RosterRow) -> Consent | None:
        """The row's consent (its ``consent`` cell, else --consent-date: when the person agreed), taken by
        --consent-taken-by; None (card-only) without either."""
        given = row.consent or self.consent_date
        if not given:
            return None
        if not self.consent_taken_by:
            raise InvalidInput("the consent column is filled but nobody is named as having taken the consents",
                               fix="Add --consent-taken-by NAME.")
        try:
            given = iso_utc(parse_iso(given if "T" in given else f"{given}T00:00:00"))
        except ValueError:
            raise InvalidInput(f"consent {given!r} is not a date", fix="Write the date the person consented, "
                               "e.g. 2026-01-31.") from None
        return Consent(given_utc=given, taken_by=self.consent_taken_by, path="csv_import",
                       language=self.consent_language)

    def _card_only(self, row: RosterRow, outcome: RowOutcome) -> RowOutcome:
        """No consent, no template: the person and their cards are saved, their photos are not read."""
        try:
            store_enrolment(self.store, self.config, row.employee_id, row.name, row.branch, row.cards,
                            self.engine.model_id, [], "import", self.actor)
        except KioskError as exc:
            outcome.problem = exc.what
            return outcome
        outcome.status = "card_only"
        outcome.problem = "no consent to face recognition in the consent column: card only" if row.photos else ""
        return outcome

    def _check_row(self, row: RosterRow) -> None:
        check_employee_id(row.employee_id)
        check_name(row.name)
        for card in row.cards:
            self.store.roster.normalise_card(card)
        if row.branch is not None and not BRANCH_RE.match(row.branch):
            raise InvalidInput(f"branch {row.branch!r} is not a branch code (letters, digits, _ . -)")
        if not row.photos and (row.consent or self.consent_date):
            raise InvalidInput("no photo file named in the photos column")
        first = self._seen.setdefault(row.employee_id, row.line)
        if first != row.line:
            raise InvalidInput(f"employee {row.employee_id} already appears on line {first}")

    def _photo_path(self, name: str) -> Path | None:
        """The photo inside the photo folder; None for a name that climbs out of it."""
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            return None
        return self.photo_dir / relative

    def _check_photos(self, row: RosterRow) -> list[PhotoCheck]:
        checks: list[PhotoCheck] = []
        kept: list[np.ndarray] = []
        for name in row.photos:
            path = self._photo_path(name)
            if path is None:
                checks.append(refuse(name, "unreadable", "the photo name points outside the photo folder"))
                continue
            if not path.is_file():
                checks.append(refuse(name, "unreadable", f"there is no file {name} in {self.photo_dir}"))
                continue
            check = check_photo_file(self.engine, path, self.gallery, row.employee_id)
            if check.ok and kept and max(float(np.dot(check.vector, v)) for v in kept) < DIFFERENT_PERSON_MAX:
                check = PhotoCheck(check.source, False, "not_same_person",
                                   "this face does not match the row's other photos", quality=check.quality)
            if check.ok:
                kept.append(check.vector)
            checks.append(check)
        return checks
