"""CLI: `kiosk enroll add` (photos or guided capture at the camera), `kiosk enroll import` (a roster CSV
and a folder of photos) and `kiosk identify` (who does a photo show)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from kiosk.base.consent import CONSENT_LANGUAGES, CONSENT_VERSION, Consent, catalogue_key
from kiosk.base.errors import InvalidInput, KioskError
from kiosk.base.text import check_name, csv_cell
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.cli.util import ConfigRef, config_options, echo_json, progress
from kiosk.store import open_store

CAMERA_HELP = ("Guided capture from the configured camera ([camera] source) instead of photos: live "
               "guidance, several varied samples, a duplicate check, then a self-test. Stop the kiosk "
               "service first, or enrol from the screen's admin mode.")


def _engine_and_gallery(config, store):  # noqa: ANN001, ANN202
    """The configured engine and the gallery of its model at the kiosk's decision threshold (as the
    daemon runs it); warns when stored templates are stale."""
    from kiosk.face.calibration import roster_gallery
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import pack_change

    engine = FaceEngine.from_config(config.face, config.quality, memory=store)
    warning = pack_change(store.roster, engine.model_id)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    gallery, _ = roster_gallery(store.roster, engine.pack, config.face, config.match, threads=config.face.threads)
    return engine, gallery


@click.group("enroll")
def enroll_group() -> None:
    """Enrol faces: store checked face templates for employees."""


@enroll_group.command("add")
@click.option("--employee", "employee_id", required=True, help="Employee id (added if new).")
@click.option("--name", required=True, help="Name as shown on screen.")
@click.option("--photos", "photos", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Photo file or folder of photos; several may follow one --photos.")
@click.argument("more_photos", nargs=-1, type=click.Path(path_type=Path))
@click.option("--card", "cards", multiple=True, help="Card number to register too (repeatable).")
@click.option("--branch", help="Branch code (defaults to this kiosk's).")
@click.option("--camera", is_flag=True, help=CAMERA_HELP)
@click.option("--samples", type=click.IntRange(1, 20), default=None,
              help="With --camera: samples to capture [default: ui.enrol_samples].")
@click.option("--card-and-face", "card_and_face", is_flag=True,
              help="This person punches with card + face whatever punch.mode says; a photo that matches another "
              "employee (twin, sibling, look-alike) is then kept, and that employee punches with card + face too.")
@click.option("--consent-taken-by", "consent_taken_by", metavar="NAME",
              help="Your name: the person read the consent text (`kiosk enroll consent-text`) and agreed, "
              "separately, to face recognition. Required: no consent, no template (add them card-only with "
              "`kiosk employee add`).")
@click.option("--consent-language", type=click.Choice(CONSENT_LANGUAGES), default="zh", show_default=True,
              help="The language the person read the consent text in.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per photo.")
@config_options
def enroll_add(employee_id: str, name: str, photos: tuple[Path, ...], more_photos: tuple[Path, ...],
               cards: tuple[str, ...], branch: str | None, camera: bool, samples: int | None, card_and_face: bool,
               consent_taken_by: str | None, consent_language: str, as_json: bool, cfg: ConfigRef) -> None:
    """Add (or extend) an employee with one face template per usable photo.

    Each photo must show exactly one face that passes the quality gate, is not another
    employee's (unless --card-and-face: look-alikes), and matches the employee's other photos.
    Exits 1 when no photo was usable.

    With --camera instead of photos: guided capture from the configured camera.
    """
    consent = consent_now(consent_taken_by, consent_language, "kiosk_camera" if camera else "cli_photos",
                          employee_id)
    if camera:
        if photos or more_photos:
            raise InvalidInput("give either photos or --camera, not both")
        if card_and_face:
            raise InvalidInput("--card-and-face is for photo enrolment",
                               fix="With --camera the duplicate question flags look-alikes; or set it afterwards "
                               "with `kiosk employee card-and-face EMPLOYEE_ID`.")
        from kiosk.cli.enroll_camera import enrol_from_camera
        enrol_from_camera(cfg, employee_id, name, cards, branch, samples, as_json, consent)
        return
    from enrollment.photos import best_photos, check_photo_file, expand_photos, look_alike_sentence, look_alikes
    from enrollment.saving import NewTemplate, store_enrolment
    from kiosk.store.roster import check_employee_id, check_name

    check_employee_id(employee_id)
    check_name(name)
    paths = expand_photos([*photos, *more_photos])
    if not paths:
        raise InvalidInput("no photos given", fix="Pass --photos PHOTO... (files or a folder).")
    config = cfg.load()
    with open_store(config) as store:
        engine, gallery = _engine_and_gallery(config, store)
        checks = []
        for path in paths:
            check = check_photo_file(engine, path, gallery, employee_id, look_alike_ok=card_and_face)
            if check.ok:
                gallery.add(employee_id, check.vector)  # later photos are checked against this one too
            checks.append(check)
            _report_check(check, as_json)
        usable, spare = best_photos(checks)
        if not usable:
            raise KioskError(f"none of the {len(checks)} photo(s) of {employee_id} was usable; nothing was stored",
                             fix="Use sharp, well-lit, frontal photos showing only this person's face.")
        found = look_alikes([c.vector for c in usable], gallery, employee_id)
        store_enrolment(store, config, employee_id, name, branch, cards, engine.model_id,
                        [NewTemplate(c.vector, c.quality.score, f"photo:{Path(c.source).name}") for c in usable],
                        "photos", "admin", look_alikes=found, card_and_face=card_and_face,
                        consent=consent)
    if found:
        sentence = look_alike_sentence(employee_id, found, gallery.cfg.threshold)
        if as_json:
            echo_json({"look_alikes": [{"employee_id": a.employee_id, "score": round(a.score, 3)} for a in found],
                       "card_and_face": [employee_id, *[a.employee_id for a in found]], "detail": sentence})
        else:
            click.echo(sentence)
    _report_spare(spare, len(usable), as_json)
    if not as_json:
        click.echo(f"{employee_id}: stored {len(usable)} template(s), refused {len(checks) - len(usable) - len(spare)} "
                   f"photo(s) (model {engine.model_id[:12]})")


def consent_now(taken_by: str | None, language: str, path: str, employee_id: str) -> Consent:
    """The person's consent, given now in front of the admin who runs the command (``taken_by``)."""
    if not (taken_by or "").strip():
        raise InvalidInput(f"no consent to face recognition recorded for {employee_id}",
                           fix="Show the person the consent text (`kiosk enroll consent-text`); once they agree, add "
                           "--consent-taken-by YOUR_NAME. Without consent enrol them card-only: "
                           "`kiosk employee add`.")
    return Consent(given_utc=iso_utc(utc_now()), taken_by=check_name(taken_by.strip()), path=path,
                   language=language)


@enroll_group.command("consent-text")
@click.option("--language", type=click.Choice(CONSENT_LANGUAGES), multiple=True,
              help="Only this language (repeatable) [default: zh and en].")
def enroll_consent_text(language: tuple[str, ...]) -> None:
    """Print the consent text to show a person before their face is enrolled, with its version."""
    from kiosk.ui.i18n import translate
    click.echo(f"version {CONSENT_VERSION}")
    for lang in language or CONSENT_LANGUAGES:
        click.echo(f"\n[{lang}]\n{translate(lang, catalogue_key(CONSENT_VERSION))}")


def _report_spare(spare: list, kept: int, as_json: bool) -> None:
    """The usable photos not stored: an enrolment keeps only the best few (enrollment.photos.best_photos)."""
    if not spare:
        return
    if as_json:
        echo_json({"not_kept": [c.source for c in spare], "kept": kept,
                   "detail": f"only the {kept} best photos are stored"})
        return
    for check in spare:
        click.echo(f"not kept {check.source} (quality {check.quality.score:.2f}): only the {kept} best photos "
                   "are stored")


def _report_check(check, as_json: bool) -> None:  # noqa: ANN001
    if as_json:
        echo_json(check.to_dict())
    elif check.ok:
        click.echo(f"ok       {check.source} (quality {check.quality.score:.2f})")
    else:
        click.echo(f"refused  {check.source}: {check.reason}: {check.detail}")


@click.command("identify")
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per photo.")
@config_options
def identify_command(photos: tuple[Path, ...], as_json: bool, cfg: ConfigRef) -> None:
    """Who the kiosk thinks each PHOTO shows: employee, score, margin, accepted or not and why."""
    from kiosk.face.images import read_image

    config = cfg.load()
    with open_store(config) as store:
        engine, gallery = _engine_and_gallery(config, store)
    for path in photos:
        result = {"photo": str(path), "employee_id": None, "score": None, "margin": None,
                  "accepted": False, "reason": "no_face", "faces": 0, "quality": []}
        try:
            image = read_image(path)
        except InvalidInput as exc:
            result["reason"] = "unreadable"
            result["detail"] = exc.what
            image = None
        face, faces = engine.photo_face(image) if image is not None else (None, [])
        if face is not None:
            result.update(gallery.search(engine.embed(image, face)).to_dict())
            result["faces"] = len(faces)
            result["quality"] = list(engine.assess_quality(image, face).reasons)
        _report_identity(result, as_json)


def _report_identity(r: dict, as_json: bool) -> None:
    if as_json:
        echo_json(r)
        return
    if r["employee_id"] is None:
        detail = f": {r['detail']}" if r.get("detail") else ""
        click.echo(f"{r['photo']}: nobody ({r['reason']}{detail})")
        return
    verdict = "accepted" if r["accepted"] else f"not accepted ({r['reason']})"
    quality = f", quality: {', '.join(r['quality'])}" if r["quality"] else ""
    click.echo(f"{r['photo']}: {r['employee_id']} score {r['score']:.3f} margin {r['margin']:.3f} {verdict}{quality}")


# -- enroll import -----------------------------------------------------------------------------

@enroll_group.command("import")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Roster CSV with a header row: id,name,card,branch,photos,consent ('card' and 'branch' may be "
              "empty; separate several cards or photo files with ';'; 'consent' is the date the person agreed "
              "to face recognition, empty: card-only).")
@click.option("--photos", "photo_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder holding the photo files named in the CSV.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every photo's verdict (row, employee, photo, status, reason, quality) to this CSV.")
@click.option("--update", is_flag=True,
              help="Also add photos for people who already have face templates (default: skip them).")
@click.option("--consent-taken-by", "consent_taken_by", metavar="NAME",
              help="Who took the consents in the CSV's consent column (the date each person agreed to face "
              "recognition). A row without a consent date is imported card-only: its photos are not read.")
@click.option("--consent-date", default="", metavar="DATE",
              help="For a CSV without a consent column: the date every person in it consented (e.g. on paper).")
@click.option("--consent-language", type=click.Choice(CONSENT_LANGUAGES), default="zh", show_default=True,
              help="The language the people read the consent text in.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per row instead of the text report.")
@config_options
def enroll_import(csv_path: Path, photo_dir: Path, report_path: Path | None, update: bool,
                  consent_taken_by: str | None, consent_date: str, consent_language: str, as_json: bool,
                  cfg: ConfigRef) -> None:
    """Enrol many people from a roster CSV and a folder of photos.

    Every row is tried, each in its own transaction; refused photos are reported with the reason
    (no face, several faces, poor quality and which check, another employee's face...). Exits 1
    when any row failed, after doing all the others.
    """
    from enrollment.importer import RosterImport, read_roster
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery, pack_change

    if report_path is not None and not report_path.parent.is_dir():
        raise InvalidInput(f"cannot write the report to {report_path}: folder {report_path.parent} does not exist",
                           fix="Create the folder first, or choose another --report path; nothing was imported.")
    rows = read_roster(csv_path)
    if not rows:
        raise InvalidInput(f"{csv_path} has no rows under its header", fix="Add one row per person.")
    config = cfg.load()
    engine = FaceEngine.from_config(config.face, config.quality)
    with open_store(config) as store:
        warning = pack_change(store.roster, engine.model_id)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        gallery = Gallery.from_roster(store.roster, engine.model_id, config.match, threads=config.face.threads)
        job = RosterImport(engine, gallery, store, config, photo_dir, skip_existing=not update,
                           consent_taken_by=check_name(consent_taken_by) if consent_taken_by else None,
                           consent_language=consent_language, consent_date=consent_date.strip())
        outcomes = [job.import_row(row) for row in progress(rows, "importing")]
    if report_path is not None:
        _write_report(report_path, outcomes)
    for outcome in outcomes:
        _report_row(outcome, as_json)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("enrolled", "card_only", "skipped", "failed")}
    refused = sum(len(o.refused) for o in outcomes)
    card_only = f", {counts['card_only']} card-only (no consent)" if counts["card_only"] else ""
    click.echo(f"{counts['enrolled']} enrolled, {counts['skipped']} skipped, {counts['failed']} failed{card_only}; "
               f"{refused} photo(s) refused (model {engine.model_id[:12]})", err=as_json)
    if counts["failed"]:
        sys.exit(1)


def _quality_text(check) -> str:  # noqa: ANN001 - PhotoCheck
    reasons = check.quality.reasons if check.quality is not None else ()
    return f" [{', '.join(reasons)}]" if reasons else ""


def _report_row(outcome, as_json: bool) -> None:  # noqa: ANN001 - RowOutcome
    if as_json:
        echo_json(outcome.to_dict())
        return
    row = outcome.row
    if outcome.status != "enrolled":
        click.echo(f"{outcome.status:8} line {row.line} {row.employee_id or '(no id)'}: {outcome.problem}")
    else:
        click.echo(f"enrolled line {row.line} {row.employee_id}: {outcome.templates} template(s)")
    for check in outcome.refused:
        click.echo(f"  refused {Path(check.source).name}: {check.reason}{_quality_text(check)}: {check.detail}")
    for check in outcome.spare:
        click.echo(f"  not kept {Path(check.source).name} (quality {check.quality.score:.2f}): only the "
                   f"{outcome.templates} best photos are stored")


def _write_report(path: Path, outcomes: list) -> None:
    try:
        fh = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise KioskError(f"the import was done, but the report {path} cannot be written: {exc.strerror}",
                         fix="Run the import again with --report in a writable folder "
                         "(rows already done are skipped).") from None
    with fh:
        writer = csv.writer(fh)

        def out(values: list) -> None:
            writer.writerow([csv_cell(v) for v in values])

        out(["line", "employee_id", "row_status", "photo", "photo_status", "reason", "quality", "detail"])
        for o in outcomes:
            if not o.checks:
                out([o.row.line, o.row.employee_id, o.status, "", "", "", "", o.problem])
            for c in o.checks:
                quality = ";".join(c.quality.reasons) if c.quality is not None else ""
                spare = any(c is s for s in o.spare)
                status = ("not_kept" if spare else "ok") if c.ok else "refused"
                detail = f"only the {o.templates} best photos are stored" if spare else c.detail
                out([o.row.line, o.row.employee_id, o.status, Path(c.source).name, status, c.reason or "", quality,
                     detail])


COMMANDS = [enroll_group, identify_command]
