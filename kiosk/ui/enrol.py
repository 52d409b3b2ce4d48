"""Guided enrolment on the running kiosk: borrows the daemon's camera frames (``daemon.borrow_frames``)
for one GuidedEnrolment at a time, so nobody is punched while a face is being enrolled."""

from __future__ import annotations

import logging
import threading

from enrollment.guided import GuidedEnrolment, GuidedSettings, Observation, Person, Sample
from enrollment.saving import NewTemplate, store_enrolment
from kiosk.base.consent import CONSENT_LANGUAGES, Consent
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.store.roster import check_employee_id, check_name
from kiosk.ui.auth import ACTOR
from kiosk.ui.errors import UiError
from kiosk.ui.preview import PreviewFrame

log = logging.getLogger(__name__)

TEMPLATE_SOURCE = "guided"


class EnrolController:
    """Starts, feeds, answers and ends the kiosk's one guided enrolment."""

    def __init__(self, daemon) -> None:  # noqa: ANN001 - KioskDaemon
        self.daemon = daemon
        self.session: GuidedEnrolment | None = None
        self._latest: tuple[object, Observation] | None = None
        self._lock = threading.Lock()

    # -- starting -----------------------------------------------------------------------------

    def start(self, employee_id: str, name: str, card: str = "", consent: bool = False,
              consent_language: str = "zh") -> dict:
        """Check the person and their consent (shown the consent text on this screen, they agreed: the admin
        ticks it), then begin capturing from the camera; raises UiError with a reason code."""
        daemon = self.daemon
        if daemon.engine is None or daemon.camera is None:
            raise UiError("no_camera", status=409)
        if not consent:
            raise UiError("no_consent")
        person = self._person(employee_id.strip(), name, card.strip())
        given = Consent(given_utc=iso_utc(utc_now()), taken_by=ACTOR, path="kiosk_guided",
                        language=consent_language if consent_language in CONSENT_LANGUAGES else "zh")
        from kiosk.face.calibration import roster_gallery

        store, config = daemon.store, daemon.config

        def fresh_gallery():  # noqa: ANN202 - Gallery at the kiosk's decision threshold
            return roster_gallery(store.roster, daemon.engine.pack, config.face, config.match)[0]

        gallery = fresh_gallery()
        ui = config.ui
        settings = GuidedSettings(samples=ui.enrol_samples, capture_timeout_s=ui.enrol_timeout_s,
                                  selftest_timeout_s=ui.selftest_timeout_s)
        session = GuidedEnrolment(daemon.engine, gallery, person, config.match, self._saver(person, given),
                                  fresh_gallery, settings, names=self._name_of)
        with self._lock:
            if self.session is not None:
                self.session.cancel()
            self.session, self._latest = session, None
        daemon.borrow_frames(self._on_frame)
        store.audit(ACTOR, "enroll.start", person.employee_id)
        return self.progress()

    def _person(self, employee_id: str, name: str, card: str) -> Person:
        from kiosk.base.errors import InvalidInput
        try:
            check_employee_id(employee_id)
        except InvalidInput:
            raise UiError("bad_employee_id") from None
        existing = self.daemon.store.roster.get(employee_id)
        name = (name or "").strip() or (existing.name if existing else "")
        try:
            name = check_name(name)
        except InvalidInput:
            raise UiError("bad_name") from None
        cards: tuple[str, ...] = ()
        if card:
            try:
                cards = (self.daemon.store.roster.normalise_card(card),)
            except InvalidInput:
                raise UiError("bad_card") from None
            owner = self.daemon.store.roster.by_card(cards[0])
            if owner is not None and owner.id != employee_id:
                raise UiError("card_taken", employee_id=owner.id)
        branch = existing.branch if existing else None
        return Person(employee_id, name, branch, cards)

    def _saver(self, person: Person, consent: Consent):  # noqa: ANN202
        daemon = self.daemon

        def save(samples: list[Sample], found: list) -> int:  # noqa: ANN001 - list[LookAlike]
            templates = [NewTemplate(s.vector, s.quality, TEMPLATE_SOURCE) for s in samples]
            ids = store_enrolment(daemon.store, daemon.config, person.employee_id, person.name, person.branch,
                                  person.cards, daemon.engine.model_id, templates, "guided", ACTOR,
                                  look_alikes=found, consent=consent)
            return len(ids)

        return save

    def _name_of(self, employee_id: str) -> str | None:
        employee = self.daemon.store.roster.get(employee_id)
        return employee.name if employee else None

    # -- frames (inference thread) ------------------------------------------------------------

    def _on_frame(self, frame) -> bool:  # noqa: ANN001 - hardware Frame
        """Takes every frame while an enrolment is open (finished ones too, until closed)."""
        session = self.session
        if session is None:
            return False
        observation = session.feed(frame.image)
        self._latest = (frame, observation)
        return True

    def preview(self) -> PreviewFrame | None:
        latest = self._latest
        if self.session is None or latest is None:
            return None
        frame, seen = latest
        bbox = seen.face.bbox if seen.face is not None else None
        return PreviewFrame(frame.image, frame.seq, bbox, "ok" if seen.usable else "adjust")

    # -- the admin's answers ------------------------------------------------------------------

    def _require(self) -> GuidedEnrolment:
        if self.session is None:
            raise UiError("no_enrolment", status=404)
        return self.session

    def progress(self) -> dict:
        return self._require().progress().to_dict()

    def confirm(self, proceed: bool) -> dict:
        session = self._require()
        session.confirm(proceed)
        self.daemon.store.audit(ACTOR, "enroll.duplicate_" + ("accepted" if proceed else "refused"),
                                session.person.employee_id)
        return self.progress()

    def retry(self) -> dict:
        self._require().retry_selftest()
        return self.progress()

    def cancel(self) -> dict:
        session = self._require()
        session.cancel()
        return self.progress()

    def close(self) -> None:
        """End the enrolment view: the camera goes back to punching."""
        with self._lock:
            session, self.session, self._latest = self.session, None, None
        self.daemon.borrow_frames(None)
        if session is not None:
            session.cancel()
            self.daemon.store.audit(ACTOR, "enroll.close", session.person.employee_id,
                                    outcome=session.progress().phase.value)
