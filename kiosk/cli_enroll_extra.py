"""CLI for enrolment in bulk and at a camera, and admin mode's PIN:
`kiosk enroll add --camera`, `kiosk enroll import --csv --photos`, `kiosk admin set-pin`.

`enroll add` itself belongs to kiosk.cli_face (the --photos form); ``register`` adds the --camera
form to that same command and the import command to its group, without changing that module.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from kiosk.cliutil import ConfigRef, config_options, echo_json
from kiosk.errors import InvalidInput, KioskError
from kiosk.store import open_store

CAMERA_HELP = ("Guided capture from the configured camera ([camera] source) instead of photos: live "
               "guidance, several varied samples, a duplicate check, then a self-test. Stop the kiosk "
               "service first, or enrol from the screen's admin mode.")


# -- enroll import -----------------------------------------------------------------------------

@click.command("import")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Roster CSV with a header row: id,name,card,branch,photos ('card' and 'branch' may be "
              "empty; separate several cards or photo files with ';').")
@click.option("--photos", "photo_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder holding the photo files named in the CSV.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every photo's verdict (row, employee, photo, status, reason, quality) to this CSV.")
@click.option("--update", is_flag=True,
              help="Also add photos for people who already have face templates (default: skip them).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per row instead of the text report.")
@config_options
def enroll_import(csv_path: Path, photo_dir: Path, report_path: Path | None, update: bool, as_json: bool,
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
        job = RosterImport(engine, gallery, store, config, photo_dir, skip_existing=not update)
        with click.progressbar(rows, label="importing", file=sys.stderr, show_pos=True) as bar:
            outcomes = [job.import_row(row) for row in bar]
    if report_path is not None:
        _write_report(report_path, outcomes)
    for outcome in outcomes:
        _report_row(outcome, as_json)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("enrolled", "skipped", "failed")}
    refused = sum(len(o.refused) for o in outcomes)
    click.echo(f"{counts['enrolled']} enrolled, {counts['skipped']} skipped, {counts['failed']} failed; "
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


def _write_report(path: Path, outcomes: list) -> None:
    try:
        fh = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise KioskError(f"the import was done, but the report {path} cannot be written: {exc.strerror}",
                         fix="Run the import again with --report in a writable folder "
                         "(rows already done are skipped).") from None
    with fh:
        out = csv.writer(fh)
        out.writerow(["line", "employee_id", "row_status", "photo", "photo_status", "reason", "quality", "detail"])
        for o in outcomes:
            if not o.checks:
                out.writerow([o.row.line, o.row.employee_id, o.status, "", "", "", "", o.problem])
            for c in o.checks:
                quality = ";".join(c.quality.reasons) if c.quality is not None else ""
                out.writerow([o.row.line, o.row.employee_id, o.status, Path(c.source).name,
                              "ok" if c.ok else "refused", c.reason or "", quality, c.detail])


# -- enroll add --camera -----------------------------------------------------------------------

def _add_camera_form(add: click.Command) -> None:
    """Give `enroll add` a --camera flag that runs the guided capture instead of the photo form."""
    original = add.callback
    add.params.append(click.Option(["--camera"], is_flag=True, help=CAMERA_HELP))
    add.params.append(click.Option(["--samples"], type=click.IntRange(1, 20), default=None,
                                   help="With --camera: samples to capture [default: ui.enrol_samples]."))

    def callback(*args, camera: bool = False, samples: int | None = None, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if not camera:
            return original(*args, **kwargs)
        if kwargs.get("photos") or kwargs.get("more_photos"):
            raise InvalidInput("give either photos or --camera, not both")
        from enrollment.terminal import enrol_from_camera
        cfg = ConfigRef(kwargs["config_path"], kwargs["overrides"])
        return enrol_from_camera(cfg, kwargs["employee_id"], kwargs["name"], kwargs["cards"], kwargs["branch"],
                                 samples, kwargs["as_json"])

    add.callback = callback
    add.help = (add.help or "") + "\n\nWith --camera instead of photos: guided capture from the configured camera."


# -- admin -------------------------------------------------------------------------------------

@click.group("admin")
def admin_group() -> None:
    """Admin mode of the kiosk screen: its PIN."""


@admin_group.command("set-pin")
@click.option("--pin-stdin", is_flag=True, help="Read the PIN from the first line of standard input "
              "instead of prompting twice (for provisioning scripts).")
@config_options
def admin_set_pin(pin_stdin: bool, cfg: ConfigRef) -> None:
    """Set the admin PIN (6-64 characters) that unlocks admin mode on the screen; stored scrypt-hashed."""
    from kiosk.ui.auth import check_pin_rules, set_pin

    if pin_stdin:
        try:
            pin = sys.stdin.readline().rstrip("\r\n")
        except UnicodeDecodeError:
            raise InvalidInput("the admin PIN on standard input is not valid UTF-8 text",
                               fix="Give the PIN as plain text (digits are easiest on the touchscreen).") from None
    else:
        pin = click.prompt("New admin PIN", hide_input=True, confirmation_prompt=True)
    check_pin_rules(pin)
    with open_store(cfg.load()) as store:
        set_pin(store, pin, actor="admin")
    click.echo("admin PIN set (any lockout cleared); the screen uses it from the next login")


def register(cli: click.Group) -> None:
    """Add `enroll import`, the --camera form of `enroll add`, and `admin` to the root group."""
    enroll = cli.commands.get("enroll")
    if not isinstance(enroll, click.Group) or "add" not in enroll.commands:
        raise KioskError("the `enroll` group (kiosk.cli_face) must be registered before kiosk.cli_enroll_extra")
    enroll.add_command(enroll_import)
    _add_camera_form(enroll.commands["add"])
    cli.add_command(admin_group)
