"""Separate consent to face recognition (PIPL: a face template is sensitive personal information).

A template is stored only with a consent on record: who consented (the employee), when, which consent
text version they were shown (its zh/en texts are the catalogues' ``consent.<version>`` entries, on the
kiosk screen and in HR's console), in which language, who took it, and by which path. Withdrawing it
erases the person's templates everywhere; their punches stay. Without consent a person is card-only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kiosk.base.errors import InvalidInput

CONSENT_VERSION = "face-2026-01"
"""The consent text shown now; older versions stay listed so the consents given under them stay readable."""
CONSENT_VERSIONS = (CONSENT_VERSION,)
CONSENT_LANGUAGES = ("zh", "en")
CONSENT_PATHS = ("kiosk_guided", "kiosk_camera", "cli_photos", "csv_import", "hr_api", "hr_console",
                 "hr_connector", "device")
NO_CONSENT_FIX = ("Record the person's separate consent to face recognition (shown the consent text, "
                  f"version {CONSENT_VERSION}), or enrol them card-only.")


def catalogue_key(version: str) -> str:
    """The catalogue entry holding a consent text version."""
    return f"consent.{version}"


@dataclass(frozen=True)
class Consent:
    """One person's consent to face templates, as recorded where it was taken."""

    given_utc: str
    taken_by: str
    path: str
    text_version: str = CONSENT_VERSION
    language: str = "zh"

    def __post_init__(self) -> None:
        check_consent(self.text_version, self.language, self.path)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_consent(text_version: str, language: str, path: str) -> None:
    if text_version not in CONSENT_VERSIONS:
        raise InvalidInput(f"consent text version {text_version!r} is not known",
                           fix=f"Use one of: {', '.join(CONSENT_VERSIONS)}.")
    if language not in CONSENT_LANGUAGES:
        raise InvalidInput(f"consent language {language!r} is not offered", fix="Use zh or en.")
    if path not in CONSENT_PATHS:
        raise InvalidInput(f"consent path {path!r} is not known", fix=f"Use one of: {', '.join(CONSENT_PATHS)}.")
