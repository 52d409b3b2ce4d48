"""Protocol v1: the JSON bodies the agent and the hub exchange (pydantic models, shared by both ends)."""

from __future__ import annotations

import base64
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)

from kiosk.base.consent import CONSENT_PATHS, CONSENT_VERSION, CONSENT_VERSIONS
from kiosk.base.errors import InvalidInput
from kiosk.base.record import CLOCK_STATES, DIRECTIONS, KINDS, METHODS, PUNCH_FIELDS, punch_hash
from kiosk.base.signing import PUBLIC_KEY_PATTERN, SIGNATURE_PATTERN
from kiosk.base.text import BRANCH, DB_INT_MAX, NAME_MAX_CHARS, check_name, check_texts, escaped
from kiosk.base.timeutil import parse_iso
from kiosk.base.vectors import unit_vector

PROTOCOL_VERSION = 1
API_PREFIX = "/v1"
NEXT_CURSOR_HEADER = "X-Next-Cursor"
MORE_HEADER = "X-More"

HEX64 = r"^[0-9a-f]{64}$"
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EMPLOYEE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CARD = r"^[0-9A-Fa-f]{4,20}$"
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TS_MIN, TS_MAX = "2000-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z"
MAX_TEMPLATE_DIM = 4096
MIN_TEMPLATE_DIM = 32
MAX_PHOTOS = 20
MAX_TEMPLATES = 50

EmployeeId = Annotated[str, Field(pattern=EMPLOYEE_ID, description="1-64 letters, digits, _ . -")]
Branch = Annotated[str, Field(pattern=BRANCH, description="Branch code: 1-32 letters, digits, _ . -")]
ModelId = Annotated[str, Field(pattern=HEX64, description="SHA-256 (hex) of the recognition model file")]
Version = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]


def _name_rule(value: str) -> str:
    try:
        return check_name(value)
    except InvalidInput as exc:
        raise ValueError(exc.what) from None


Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS, description="A person's name: 1-100 "
                            "characters, no control characters or text-direction overrides."),
                 AfterValidator(_name_rule)]
"""The one rule for a person's name (kiosk.base.text.check_name), on every path that sends one."""


class WireModel(BaseModel):
    """A protocol body: unknown fields are errors, so typos and version skew are loud."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class InputModel(WireModel):
    """A body the hub (or a kiosk) receives: no text in it holds control characters, bidirectional
    overrides or unpaired surrogates (kiosk.base.text); the error names the field."""

    @field_validator("*")
    @classmethod
    def verify_plain_text(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            return check_texts(value, info.field_name or "value")
        except InvalidInput as exc:
            raise ValueError(exc.what) from None


class ErrorBody(WireModel):
    """Every 4xx/5xx answer: a machine code, a sentence, what to do, and per-field details."""

    code: str = Field(description="Machine-readable error code, e.g. invalid_request, unauthorized.")
    message: str = Field(description="What went wrong, in one sentence.")
    fix: str = Field("", description="What the caller can do about it.")
    details: list[dict[str, Any]] = Field(default_factory=list, description="Per-field problems.")


class ErrorResponse(WireModel):
    error: ErrorBody


def validation_reason(exc: ValidationError, limit: int = 5) -> str:
    """A short sentence naming each bad field of one record (never echoing the values)."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(escaped(f"{loc}: {err['msg']}"))
    return "; ".join(parts)


def check_timestamp(value: str) -> str:
    """Canonical UTC millisecond timestamps only (what kiosk.base.timeutil.iso_utc writes)."""
    if not TS_RE.match(value):
        raise ValueError("timestamp must look like 2026-01-31T08:57:00.123Z (UTC, milliseconds)")
    try:
        parse_iso(value)
    except ValueError:
        raise ValueError("timestamp is not a real date and time") from None
    if not TS_MIN <= value < TS_MAX:
        raise ValueError("timestamp is outside 2000-2100")
    return value


# -- punches -------------------------------------------------------------------


def normal_direction(value: object) -> str | None:
    """IN / OUT as the hub stores them (any case); anything else, 'none' included, is no direction."""
    text = str(value or "").strip().upper()
    return text if text in DIRECTIONS else None


class _PunchRules(InputModel):
    """What every punch on the wire obeys beyond its field types; the hub re-checks ``hash``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("ts_utc", check_fields=False)
    @classmethod
    def verify_ts(cls, value: str) -> str:
        return check_timestamp(value)

    @field_validator("score", "lat", "lon", "accuracy_m", check_fields=False)
    @classmethod
    def verify_finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def hash_matches(self) -> bool:
        return punch_hash(self.model_dump()) == self.hash


# The wire form of each punch field (kiosk.base.record.PUNCH_FIELDS): type and bounds. A field added
# to the record without a rule here fails at import, so the wire model never drifts from the record.
PUNCH_WIRE_RULES: dict[str, tuple[Any, Any]] = {
    "id": (str, Field(pattern=UUID_RE, description="Punch id (UUIDv7, lower-case).")),
    "seq": (int, Field(ge=1, le=2**62, description="Per-device sequence number, 1, 2, 3...")),
    "employee_id": (EmployeeId, ...),
    "method": (Literal[METHODS], ...),  # type: ignore[valid-type]
    "ts_utc": (str, Field(description="Wall-clock time of the punch, UTC.")),
    "mono_ns": (int, Field(ge=0, le=2**63 - 1, description="CLOCK_MONOTONIC at the punch, ns.")),
    "boot_id": (str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")),
    "clock_state": (Literal[CLOCK_STATES], ...),  # type: ignore[valid-type]
    "score": (float | None, Field(None, ge=-1.0, le=1.0, description="Face match score (cosine).")),
    "lat": (float | None, Field(None, ge=-90, le=90)),
    "lon": (float | None, Field(None, ge=-180, le=180)),
    "accuracy_m": (float | None, Field(None, ge=0, le=1e6)),
    "flags": (str, Field("", max_length=200)),
    "note": (str, Field("", max_length=500)),
    "prev_hash": (str, Field(pattern=HEX64)),
    "hash": (str, Field(pattern=HEX64)),
    "direction": (Literal["", *DIRECTIONS], Field("", description="IN, OUT, or empty: no direction.")),  # type: ignore[valid-type]
    "kind": (Literal[KINDS], Field("punch", description="punch, or correction (made by hand).")),  # type: ignore[valid-type]
    "author": (str, Field("", max_length=64, description="Who made a correction.")),
}
if set(PUNCH_WIRE_RULES) != set(PUNCH_FIELDS):
    raise RuntimeError(f"sync.protocol.PUNCH_WIRE_RULES and kiosk.base.record.PUNCH_FIELDS differ: "
                       f"{sorted(set(PUNCH_WIRE_RULES) ^ set(PUNCH_FIELDS))}")

SIGNATURE_RULE = (str, Field("", pattern=SIGNATURE_PATTERN, description="Ed25519 signature (128 hex digits) of "
                                "``hash`` by the device's registered key (kiosk.base.signing); not part of the "
                                "hashed record. Empty only from a device registered without a key."))
PunchIn = create_model("PunchIn", __base__=_PunchRules, __module__=__name__,
                       **{name: PUNCH_WIRE_RULES[name] for name in PUNCH_FIELDS}, signature=SIGNATURE_RULE)
PunchIn.__doc__ = ("One punch as the kiosk stored it (kiosk.base.record.Punch) and its device's signature; the hub "
                   "re-checks ``hash`` and the signature.")


PunchJson = Annotated[dict[str, Any], WithJsonSchema(PunchIn.model_json_schema())]


class PunchBatch(WireModel):
    """Punches in seq order. Each record is checked on its own: one bad record never blocks the rest."""

    punches: list[PunchJson] = Field(min_length=1, description="Punch records (see PunchIn).")


class PunchResult(WireModel):
    id: str = Field(description="The punch id as sent (or '' when the record had none).")
    seq: int | None = Field(None, description="The punch seq as sent.")
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = Field("", description="Why it was rejected; for accepted ones, a chain warning if any.")


class PunchBatchResponse(WireModel):
    results: list[PunchResult]
    accepted: int
    duplicates: int
    rejected: int
    chain_seq: int = Field(description="Highest seq of this device the hub has processed.")


# -- registration and heartbeat -------------------------------------------------


class RegisterRequest(InputModel):
    code: str = Field(min_length=4, max_length=64, description="One-time registration code from HR.")
    device_name: str = Field(min_length=1, max_length=64)
    software_version: Version
    model_id: ModelId | None = Field(None, description="Face model this kiosk runs (None: cards only).")
    template_dim: int | None = Field(None, ge=MIN_TEMPLATE_DIM, le=MAX_TEMPLATE_DIM)
    chain_seq: int = Field(0, ge=0, le=DB_INT_MAX, description="Seq of the last punch this store already delivered "
                           "(or purged); the hub continues the chain check from there.")
    chain_hash: str = Field("0" * 64, pattern=HEX64, description="Hash of that punch (zeros for none).")
    public_key: str | None = Field(None, pattern=PUBLIC_KEY_PATTERN, description="The kiosk's Ed25519 "
                                   "punch-signing public key (64 hex digits). Once given, every punch from "
                                   "this device must carry its signature.")


class RegisterResponse(WireModel):
    device_id: str
    token: str = Field(description="Bearer token for this device; shown once, hashed on the hub.")
    branch: Branch
    max_batch: int
    hub_time_utc: str


MAX_ANCHORS = 100


class ClockAnchor(InputModel):
    """A moment when the kiosk knew the true time: the hub corrects unverified punches of that boot from it."""

    boot_id: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    mono_ns: int = Field(ge=0, le=DB_INT_MAX, description="CLOCK_MONOTONIC of that boot, ns.")
    utc: str = Field(description="The true UTC time at mono_ns.")
    source: Literal["ntp", "gps", "hub"]

    @field_validator("utc")
    @classmethod
    def verify_utc(cls, value: str) -> str:
        return check_timestamp(value)


class Heartbeat(InputModel):
    software_version: Version
    model_id: ModelId | None = None
    template_dim: int | None = Field(None, ge=MIN_TEMPLATE_DIM, le=MAX_TEMPLATE_DIM)
    backlog: int = Field(ge=0, le=DB_INT_MAX, description="Punches not yet acknowledged by the hub.")
    rejected: int = Field(0, ge=0, le=DB_INT_MAX, description="Punches the hub rejected (kept on the kiosk).")
    last_punch_seq: int = Field(0, ge=0, le=DB_INT_MAX)
    last_punch_utc: str | None = None
    clock_offset_s: float | None = Field(None, ge=-1e9, le=1e9, description="Hub time minus kiosk time.")
    clock_state: Literal[CLOCK_STATES]  # type: ignore[valid-type]
    disk_free_bytes: int | None = Field(None, ge=0, le=DB_INT_MAX)
    temperature_c: float | None = Field(None, ge=-100, le=200)
    roster_cursor: int = Field(0, ge=0, le=DB_INT_MAX)
    clock_anchors: list[ClockAnchor] = Field(default_factory=list, max_length=MAX_ANCHORS,
                                             description="The kiosk's newest clock anchors.")

    @field_validator("last_punch_utc")
    @classmethod
    def verify_ts(cls, value: str | None) -> str | None:
        return None if value is None else check_timestamp(value)

    @field_validator("clock_offset_s", "temperature_c")
    @classmethod
    def verify_finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class HeartbeatResponse(WireModel):
    device_id: str
    branch: Branch
    max_batch: int
    hub_time_utc: str


# -- roster ---------------------------------------------------------------------


class RosterTemplate(InputModel):
    model_id: ModelId
    dim: int = Field(ge=MIN_TEMPLATE_DIM, le=MAX_TEMPLATE_DIM)
    vector_b64: str = Field(description="base64 of little-endian float32 values, L2-normalised.")
    quality: float | None = None

    def vector(self) -> np.ndarray:
        """Decode and check the vector (length, finite, normalisable): L2-normalised float32, or ValueError."""
        try:
            vec = np.frombuffer(base64.b64decode(self.vector_b64, validate=True), dtype="<f4")
            return unit_vector(vec, self.dim, what=f"template of model {self.model_id[:12]}")
        except InvalidInput as exc:
            raise ValueError(exc.what) from None
        except ValueError:
            raise ValueError(f"template of model {self.model_id[:12]} is not base64 of float32 values") from None


class RosterEmployee(WireModel):
    employee_id: EmployeeId
    name: str = Field(min_length=1, max_length=100)
    cards: list[str] = Field(default_factory=list)
    templates: list[RosterTemplate] = Field(default_factory=list)
    erase_own_templates: bool = Field(False, description="Erase the faces of this person enrolled at this kiosk "
                                      "(HR dropped them, or the person withdrew consent).")


class RosterPage(WireModel):
    cursor: int = Field(description="Send this back as ?cursor= for the next page.")
    more: bool = Field(description="True when another page follows right away.")
    model_id: ModelId | None = Field(None, description="The model id templates were chosen for.")
    employees: list[RosterEmployee] = Field(default_factory=list, description="New or changed people.")
    deletions: list[EmployeeId] = Field(default_factory=list,
                                        description="People to erase on this kiosk now (left or moved).")


class ConsentIn(InputModel):
    """The person's separate consent to face templates (PIPL): without it no template is stored."""

    given_utc: str = Field(description="When the person consented (UTC, e.g. 2026-01-31T08:57:00.000Z).")
    text_version: str = Field(CONSENT_VERSION, max_length=32, description="The consent text they were shown "
                              f"(catalogue entry consent.VERSION); now {CONSENT_VERSION}.")
    language: Literal["zh", "en"] = "zh"
    taken_by: Name | None = Field(None, description="Who took the consent (default: the HR caller or the kiosk).")

    @field_validator("given_utc")
    @classmethod
    def verify_given(cls, value: str) -> str:
        return check_timestamp(value)

    @field_validator("text_version")
    @classmethod
    def verify_version(cls, value: str) -> str:
        if value not in CONSENT_VERSIONS:
            raise ValueError(f"unknown consent text version; use one of {', '.join(CONSENT_VERSIONS)}")
        return value


class ConsentOut(WireModel):
    kind: Literal["given", "withdrawn"]
    given_utc: str | None = Field(description="When the person consented (or withdrew).")
    text_version: str | None
    language: str | None
    taken_by: str
    path: str = Field(description="Where it was taken: " + ", ".join(CONSENT_PATHS) + ", or withdraw.")
    recorded_utc: str


MAX_ENROLMENTS = 50
MAX_ENROLMENT_TEMPLATES = 20


class DeviceEnrolment(InputModel):
    """A face enrolled at a kiosk (guided capture or import), sent to the hub (source 'device')."""

    enrolment_id: int = Field(ge=1, le=DB_INT_MAX, description="The kiosk's id for this enrolment (idempotency key).")
    employee_id: EmployeeId
    name: Name
    cards: list[str] = Field(default_factory=list, max_length=10)
    templates: list[RosterTemplate] = Field(min_length=1, max_length=MAX_ENROLMENT_TEMPLATES)
    created_utc: str
    consent: ConsentIn | None = Field(None, description="The consent taken at the kiosk (path in consent_path); "
                                      "without one (and none on file) the hub refuses the faces.")
    consent_path: Literal["kiosk_guided", "kiosk_camera", "cli_photos", "csv_import", "device"] = "device"

    @field_validator("created_utc")
    @classmethod
    def verify_created(cls, value: str) -> str:
        return check_timestamp(value)


EnrolmentJson = Annotated[dict[str, Any], WithJsonSchema(DeviceEnrolment.model_json_schema())]


class DeviceEnrolmentBatch(WireModel):
    """Enrolments; each is checked on its own (as DeviceEnrolment): one bad record never blocks the rest."""

    enrolments: list[EnrolmentJson] = Field(min_length=1, max_length=MAX_ENROLMENTS)


class EnrolmentResult(WireModel):
    enrolment_id: int
    status: Literal["stored", "duplicate", "rejected"]
    reason: str = ""


class DeviceEnrolmentResponse(WireModel):
    results: list[EnrolmentResult]


def encode_vector(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")


# -- HR -------------------------------------------------------------------------


class TemplateIn(InputModel):
    model_id: ModelId
    vector: list[float] = Field(min_length=MIN_TEMPLATE_DIM, max_length=MAX_TEMPLATE_DIM)
    quality: float | None = Field(None, ge=0, le=1)

    @field_validator("vector")
    @classmethod
    def verify_vector(cls, value: list[float]) -> list[float]:
        try:
            unit_vector(value)
        except InvalidInput as exc:
            raise ValueError(exc.what) from None
        return value


Photo = Annotated[str, Field(min_length=16, description="base64 of a JPEG or PNG file")]


class EmployeeIn(InputModel):
    """HR creates (or re-hires) an employee; the hub makes templates from ``photos``."""

    employee_id: EmployeeId
    name: Name
    branches: list[Branch] = Field(default_factory=list, max_length=64)
    cards: list[Annotated[str, Field(pattern=CARD)]] = Field(default_factory=list, max_length=16)
    photos: list[Photo] = Field(default_factory=list, max_length=MAX_PHOTOS)
    templates: list[TemplateIn] = Field(default_factory=list, max_length=MAX_TEMPLATES)
    drop_device_templates: bool = Field(False, description="Erase faces a kiosk enrolled for this id (everywhere, "
                                        "on the next sync).")
    consent: ConsentIn | None = Field(None, description="Required with photos or templates unless a consent is "
                                      "on file: no consent, no template (the person is card-only).")


class EmployeePatch(InputModel):
    """HR changes part of an employee; lists given replace the old ones."""

    name: Name | None = None
    branches: list[Branch] | None = Field(None, max_length=64)
    cards: list[Annotated[str, Field(pattern=CARD)]] | None = Field(None, max_length=16)
    photos: list[Photo] = Field(default_factory=list, max_length=MAX_PHOTOS)
    templates: list[TemplateIn] = Field(default_factory=list, max_length=MAX_TEMPLATES)
    replace_templates: bool = Field(False, description="Drop the old templates before adding these.")
    drop_device_templates: bool = Field(False, description="Erase faces kiosks enrolled for this person.")
    consent: ConsentIn | None = Field(None, description="The person's consent, with photos or templates.")


class DeviceTemplates(WireModel):
    """A person's faces enrolled at one kiosk: scoped (used at that kiosk's branch only), held (used nowhere
    else, the person is HR's) or approved by HR (used wherever the person works)."""

    device_id: str
    branch: str | None = Field(description="The branch they are limited to; null once approved.")
    templates: int
    state: Literal["scoped", "held", "approved"]
    enrolled_utc: str
    last_utc: str


class DeviceTemplatesIn(InputModel):
    device_id: Annotated[str, Field(max_length=64)] | None = Field(None, description="Only this kiosk's "
                                                                   "enrolments (default: every kiosk's).")


class PhotoProblem(WireModel):
    index: int = Field(description="Position of the photo in the request, from 0.")
    model_id: str | None = None
    reason: str


class PhotoCheckIn(WireModel):
    """Photos to check before a new hire (or an edit) is saved: nothing is stored."""

    photos: list[Photo] = Field(min_length=1, max_length=MAX_PHOTOS)


class PhotoVerdict(WireModel):
    index: int = Field(description="Position of the photo in the request, from 0.")
    ok: bool = Field(description="The photo would be used: a template is made from it (for at least one model).")
    reasons: list[str] = Field(default_factory=list, description="Why it would not be used, per model: "
                               "'no_face: ...', 'several_faces: ...', 'poor_quality: the face is too small ...', "
                               "'unreadable: ...', 'too_large: ...', 'not_kept: ...' (usable, but only the best 3 "
                               "photos of a person are stored) (the name before ':' is stable).")


class PhotoCheckOut(WireModel):
    photos: list[PhotoVerdict]


class EmployeeOut(WireModel):
    employee_id: str
    name: str
    active: bool
    branches: list[str]
    cards: list[str]
    templates: dict[str, int] = Field(description="Template count per model id.")
    photos_used: int = 0
    photos_rejected: list[PhotoProblem] = Field(default_factory=list)
    models_missing: list[str] = Field(default_factory=list,
                                      description="Model ids devices run that the hub cannot make templates for.")
    terminated_utc: str | None = None
    terminate_reason: str = ""
    device_templates: list[DeviceTemplates] = Field(default_factory=list,
                                                    description="Faces enrolled at kiosks, per kiosk.")
    notice: str = Field("", description="What HR should know, e.g. kiosk faces awaiting approval.")


class WithdrawIn(InputModel):
    withdrawn_utc: str | None = Field(None, description="When the person withdrew (default: now).")
    taken_by: Name | None = Field(None, description="Who received the withdrawal (default: the HR caller).")

    @field_validator("withdrawn_utc")
    @classmethod
    def verify_withdrawn(cls, value: str | None) -> str | None:
        return None if value is None else check_timestamp(value)


class ModelHeld(WireModel):
    model_id: str
    templates: int
    sources: dict[str, int] = Field(description="Templates per source: photo, hr, device:ID.")
    first_utc: str
    last_utc: str


class PunchesHeld(WireModel):
    count: int
    first_utc: str | None
    last_utc: str | None
    devices: int


class PersonReport(WireModel):
    """What the hub holds about one person, for an access request (PIPL): no vectors, no photos."""

    employee_id: str
    name: str
    active: bool
    branches: list[str]
    cards: list[str]
    templates: list[ModelHeld]
    device_templates: list[DeviceTemplates]
    consents: list[ConsentOut]
    consent_current: bool = Field(description="A consent is on file and not withdrawn.")
    punches: PunchesHeld
    photos_kept: bool = Field(False, description="The hub keeps no photos: templates are made and photos dropped.")
    generated_utc: str


class TerminateIn(InputModel):
    reason: str = Field("", max_length=500)


class DeviceIssue(WireModel):
    kind: str
    seq_from: int | None
    seq_to: int | None
    detail: str
    first_seen_utc: str
    resolved_utc: str | None
    employee_id: str | None = Field(None, description="The person whose punches the issue is about "
                                    "(not_on_roster, unknown_employee).")


class DeviceStatus(WireModel):
    device_id: str
    branch: str
    name: str
    status: str
    state: Literal["online", "offline", "never", "revoked"] = Field(
        description="online/offline by the age of the last heartbeat; never: no heartbeat yet.")
    heartbeat_age_s: float | None = Field(None, description="Seconds since the last heartbeat.")
    model_id: str | None
    software_version: str | None
    registered_utc: str
    last_seen_utc: str | None
    heartbeat_utc: str | None
    heartbeat: dict[str, Any]
    punches: int
    duplicates: int
    rejected: int
    chain_seq: int
    open_issues: int
    issues: list[DeviceIssue] = Field(default_factory=list)


LOCAL_MOMENT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


class CorrectionIn(InputModel):
    """HR's correction: a punch at a past local time of the branch, with a direction and a reason."""

    employee_id: EmployeeId
    branch: Branch | None = Field(None, description="Branch the punch belongs to (default: the person's first).")
    local_time: str = Field(description="Local date and time in the branch's time zone, e.g. 2026-11-02T18:05.")
    direction: Literal[DIRECTIONS] | None = Field(None, description="IN or OUT (None: no direction).")  # type: ignore[valid-type]
    reason: str = Field(min_length=1, max_length=500, description="Why (mandatory; kept with the record).")
    confirm: bool = Field(False, description="Add it even if another manual punch or correction is near.")

    @field_validator("local_time")
    @classmethod
    def verify_local_time(cls, value: str) -> str:
        value = value.strip()
        if not LOCAL_MOMENT_RE.match(value):
            raise ValueError("local_time must look like 2026-11-02T18:05 (local date and time, no zone)")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("local_time is not a real date and time") from None
        return value

    @field_validator("reason")
    @classmethod
    def verify_reason(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a reason is required (plain text)")
        return value

    def local_moment(self) -> datetime:
        return datetime.fromisoformat(self.local_time)


class EmployeePage(WireModel):
    employees: list[EmployeeOut]
    total: int = Field(description="How many employees match the filters.")
    next_offset: int | None = Field(None, description="Send as ?offset= for the next page; None on the last.")


class BranchIn(InputModel):
    timezone: str = Field(description="IANA time zone, e.g. Asia/Shanghai.")
    name: str | None = Field(None, max_length=100)


class CodeIn(InputModel):
    branch: Branch
    label: str = Field("", max_length=100)


class OutboxActionIn(InputModel):
    """Records of the outbound queue to retry or skip: by id, or every parked one (of one subscription)."""

    ids: list[Annotated[int, Field(ge=1, le=DB_INT_MAX)]] = Field(default_factory=list, max_length=1000,
                                                            description="Record ids (GET /v1/hr/outbox).")
    all_parked: bool = Field(False, description="Every parked record (of ``subscription`` when given).")
    subscription: str | None = Field(None, max_length=64, description="Only records of this subscription.")


class WebhookIn(InputModel):
    """A webhook subscription: where to POST and which event types (default: all)."""

    url: str = Field(min_length=8, max_length=2000, description="The receiver's http:// or https:// URL.")
    event_types: list[str] = Field(default_factory=list, max_length=20, description="Event types; empty: all.")
    description: str = Field("", max_length=200, description="What receives these.")


class SignInIn(InputModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
