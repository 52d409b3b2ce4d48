"""CLI: `kiosk enroll add` (photos -> templates) and `kiosk identify` (who does a photo show)."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk.cliutil import ConfigRef, config_options, echo_json
from kiosk.errors import InvalidInput, KioskError
from kiosk.store import open_store


def _engine_and_gallery(config, store):  # noqa: ANN001, ANN202
    """The configured engine and the gallery of its model; warns when stored templates are stale."""
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery, pack_change

    engine = FaceEngine.from_config(config.face, config.quality)
    warning = pack_change(store.roster, engine.model_id)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    return engine, Gallery.from_roster(store.roster, engine.model_id, config.match, threads=config.face.threads)


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per photo.")
@config_options
def enroll_add(employee_id: str, name: str, photos: tuple[Path, ...], more_photos: tuple[Path, ...],
               cards: tuple[str, ...], branch: str | None, as_json: bool, cfg: ConfigRef) -> None:
    """Add (or extend) an employee with one face template per usable photo.

    Each photo must show exactly one face that passes the quality gate, is not another
    employee's, and matches the employee's other photos. Exits 1 when no photo was usable.
    """
    from enrollment.photos import check_photo_file, expand_photos
    from kiosk.roster import check_employee_id, check_name

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
            check = check_photo_file(engine, path, gallery, employee_id)
            if check.ok:
                gallery.add(employee_id, check.vector)  # later photos are checked against this one too
            checks.append(check)
            _report_check(check, as_json)
        usable = [c for c in checks if c.ok]
        if not usable:
            raise KioskError(f"none of the {len(checks)} photo(s) of {employee_id} was usable; nothing was stored",
                             fix="Use sharp, well-lit, frontal photos showing only this person's face.")
        with store.atomic("enrolling the employee"):
            store.roster.add(employee_id, name, branch or config.device.branch, cards, exist_ok=True)
            for check in usable:
                store.roster.add_template(employee_id, engine.model_id, check.vector, check.quality.score,
                                          f"photo:{Path(check.source).name}")
            store.audit("admin", "enroll.photos", employee_id, stored=len(usable), refused=len(checks) - len(usable))
    if not as_json:
        click.echo(f"{employee_id}: stored {len(usable)} template(s), refused {len(checks) - len(usable)} photo(s) "
                   f"(model {engine.model_id[:12]})")


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
        faces = engine.detect_photo(image) if image is not None else []
        face = engine.choose(faces, image.shape) if faces else None
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


COMMANDS = [enroll_group, identify_command]


def register(cli: click.Group, bench: click.Group) -> None:
    """Add the face commands to the root group and the face benchmarks to `kiosk bench`."""
    from kiosk import bench_face

    for command in COMMANDS:
        cli.add_command(command)
    for command in bench_face.COMMANDS:
        bench.add_command(command)
