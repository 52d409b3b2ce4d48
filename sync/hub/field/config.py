"""[field]: phones of field staff, paired with a passkey, punching at their sites."""

from __future__ import annotations

from pydantic import Field

from kiosk.base.config import StrictModel


class FieldConfig(StrictModel):
    """Field punches from paired phones (`kiosk hub field pair EMPLOYEE`)."""

    origin: str = Field("", pattern=r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)?$",
                        description="The origin phones open, e.g. https://hub.example.com (the passkeys' relying "
                        "party is its host name). Empty: the origin each request was made to (a hub reached "
                        "directly); set it behind a proxy.")
    pairing_ttl_min: float = Field(15, ge=1, le=7 * 24 * 60, description="Minutes a pairing link stays usable "
                                   "(it is also spent by its first use).")
    challenge_ttl_s: float = Field(120, ge=10, le=3600, description="Seconds between the hub preparing a punch "
                                   "(face and place checked) and the phone's passkey confirming it.")
    liveness_mode: str = Field("challenge", pattern=r"^(challenge|blink)$", description="The liveness check of "
                               "a punch, judged by the hub with the kiosk's rules ([liveness] defaults): challenge = "
                               "a random sequence of head turns and a blink, drawn by the hub per punch and shown "
                               "on the phone (a recorded video cannot follow it); blink = any natural blink (stops "
                               "photos, not a video replay of a blinking person).")
    challenge_steps: int = Field(2, ge=1, le=3, description="Steps per challenge, drawn without repeats from turn "
                                 "left / turn right / blink in a random order.")
    challenge_timeout_s: float = Field(8.0, ge=2, le=30, description="Seconds the person has to do the challenge "
                                       "(blink mode: to blink) once the phone starts filming.")
    attempts_per_minute: int = Field(10, ge=1, le=600, description="Punch attempts a phone may start (and punches "
                                     "it may prepare) per minute; more are answered 429 with the seconds to wait.")
    default_policy: str = Field("flag", pattern=r"^(off|flag|refuse)$", description="Geofence policy of an "
                                "employee who has none of their own: off, flag (outside is marked) or refuse "
                                "(clearly outside is refused, uncertain flagged).")
    offline_max_age_h: float = Field(72, ge=0.1, le=31 * 24, description="Hours an offline punch may wait on the "
                                     "phone: one the hub receives later than this after the phone's time is "
                                     "refused (it is the phone's clock, so such punches are stored "
                                     "clock_state = unverified with their delay).")
    max_speed_kmh: float = Field(300, ge=10, le=2000, description="Faster than this between two consecutive punches "
                                 "of the employee (straight line, hub or phone times) is flagged impossible_travel.")
