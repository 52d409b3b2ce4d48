"""`kiosk enroll add --camera`: the guided enrolment in a terminal, on the configured camera.

The same GuidedEnrolment as the screen's admin mode; guidance lines come from the screen's
catalogue in ui.language, the duplicate question is asked with a yes/no prompt.
"""

from __future__ import annotations

import logging
import time

import click

from enrollment.guided import GuidedEnrolment, GuidedSettings, Person, Phase, Sample
from enrollment.saving import NewTemplate, store_enrolment
from kiosk.base.consent import Consent
from kiosk.base.errors import InvalidInput, KioskError
from kiosk.cli.util import ConfigRef, echo_json
from kiosk.store.database import open_store
from kiosk.store.roster import check_employee_id, check_name, normalise_card
from kiosk.ui.i18n import translate

log = logging.getLogger(__name__)

FRAME_WAIT_S = 0.5
NO_PICTURE_S = 10.0  # no frame at all for this long: the camera is not usable from here
ACTOR = "admin"


def enrol_from_camera(cfg: ConfigRef, employee_id: str, name: str, cards: tuple[str, ...], branch: str | None,
                      samples: int | None, as_json: bool, consent: Consent) -> None:
    """Run a guided enrolment on the camera of ``cfg``; raises KioskError when nothing was enrolled."""
    from hardware import open_camera
    from kiosk.face.calibration import roster_gallery
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery

    check_employee_id(employee_id)
    config = cfg.load()
    person = Person(employee_id, check_name(name), branch,
                    tuple(normalise_card(c, config.rfid.card_format) for c in cards))
    if config.camera.source.strip() in ("", "none"):
        raise InvalidInput("no camera is configured (camera.source is empty)",
                           fix="Set [camera] source in the config, or pass --set camera.source=v4l2:/dev/video0.")
    engine = FaceEngine.from_config(config.face, config.quality)
    ui = config.ui
    settings = GuidedSettings(samples=samples or ui.enrol_samples, capture_timeout_s=ui.enrol_timeout_s,
                              selftest_timeout_s=ui.selftest_timeout_s)
    with open_store(config) as store:
        def fresh_gallery() -> Gallery:
            return roster_gallery(store.roster, engine.pack, config.face, config.match, threads=config.face.threads)[0]

        def save(taken: list[Sample], found: list) -> int:  # noqa: ANN001 - list[LookAlike]
            templates = [NewTemplate(s.vector, s.quality, "guided") for s in taken]
            return len(store_enrolment(store, config, person.employee_id, person.name,
                                       person.branch or config.device.branch, person.cards, engine.model_id,
                                       templates, "guided", ACTOR, look_alikes=found,
                                       consent=consent))

        def name_of(other: str) -> str | None:
            employee = store.roster.get(other)
            return employee.name if employee else None

        session = GuidedEnrolment(engine, fresh_gallery(), person, config.match, save, fresh_gallery, settings,
                                  names=name_of)
        camera = open_camera(config.camera)
        camera.start()
        try:
            _run(session, camera, config.ui.language, as_json)
        finally:
            camera.stop()
    _finish(session, config.ui.language, as_json)


def _run(session: GuidedEnrolment, camera, lang: str, as_json: bool) -> None:  # noqa: ANN001 - Camera
    progress = session.progress()
    _say(lang, as_json, "cli.capture_start", employee_id=session.person.employee_id, name=session.person.name,
         needed=progress.samples_needed)
    last_line, last_frame, last_phase = None, time.monotonic(), progress.phase
    while not session.finished:
        frame = camera.read(FRAME_WAIT_S)
        if frame is None:
            _check_camera(camera, time.monotonic() - last_frame)
            progress = session.progress()  # notices a timeout with no frames
            continue
        last_frame = time.monotonic()
        session.feed(frame.image)
        progress = session.progress()
        if progress.phase is Phase.CONFIRM:
            _ask(session, lang, as_json)
            progress = session.progress()
        if progress.phase is Phase.SELF_TEST and last_phase is not Phase.SELF_TEST:
            _say(lang, as_json, "cli.saved", templates=progress.templates_saved, employee_id=session.person.employee_id)
            if progress.look_alikes:
                _say(lang, as_json, "enrol.look_alike", employee_id=session.person.employee_id,
                     others=", ".join(a.employee_id for a in progress.look_alikes))
        last_phase = progress.phase
        line = _line(progress, lang)
        if line and line != last_line and not as_json:
            click.echo(f"  {line}")
            last_line = line


def _line(progress, lang: str) -> str | None:  # noqa: ANN001 - Progress
    if progress.guidance is None:
        return None
    text = translate(lang, f"guide.{progress.guidance}")
    if progress.phase is Phase.CAPTURING and progress.guidance == "good":
        text += f" ({translate(lang, 'cli.sample', taken=progress.samples, needed=progress.samples_needed)})"
    return text


def _check_camera(camera, silent_s: float) -> None:  # noqa: ANN001 - Camera
    if camera.finished:
        raise KioskError(f"the camera source ended before the enrolment finished ({camera.describe()})",
                         fix="Use a live camera, or an images:/file: source with loop=1.")
    if silent_s > NO_PICTURE_S:
        status = camera.status
        raise KioskError(f"no picture from the camera for {silent_s:.0f} s ({status.state.value}: {status.reason})",
                         fix="Check camera.source; if the kiosk service holds the camera, stop it "
                         "(systemctl stop kiosk) or enrol from the screen's admin mode.")


def _ask(session: GuidedEnrolment, lang: str, as_json: bool) -> None:
    warning = session.progress().warning
    question = translate(lang, f"warning.{warning.kind}", employee_id=warning.employee_id, name=warning.name or "",
                         score=f"{warning.score:.2f}")
    click.echo(question, err=as_json)
    try:
        proceed = click.confirm(translate(lang, "cli.confirm_continue"), default=False, err=as_json)
    except click.Abort:
        proceed = False
    session.confirm(proceed)


def _say(lang: str, as_json: bool, key: str, **params: object) -> None:
    click.echo(translate(lang, key, **params), err=as_json)


def _finish(session: GuidedEnrolment, lang: str, as_json: bool) -> None:
    progress = session.progress()
    if as_json:
        echo_json(progress.to_dict())
    employee_id = session.person.employee_id
    if progress.phase is Phase.DONE:
        if not as_json:
            _say(lang, as_json, "cli.done", employee_id=employee_id, templates=progress.templates_saved)
        return
    if progress.phase is Phase.CANCELLED:
        raise KioskError(translate(lang, "cli.not_saved", employee_id=employee_id))
    detail = translate(lang, f"failure.{progress.failure}", detail=progress.failure_detail)
    raise KioskError(detail, fix="" if progress.templates_saved else translate(lang, "cli.not_saved",
                                                                                employee_id=employee_id))
