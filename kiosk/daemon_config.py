"""Config sections of the daemon: punch policy, liveness, trusted time, the frame pipeline, events."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from kiosk.configbase import ConfigPath, StrictModel

PunchMode = Literal["face", "card", "face_or_card", "card_and_face"]


class PunchConfig(StrictModel):
    """How a punch is decided."""

    mode: PunchMode = Field(
        "face_or_card", description="face: face only; card: card only; face_or_card: either; "
        "card_and_face: a card, then a 1:1 face check against that employee within verify_window_s.")
    debounce_s: float = Field(60.0, ge=0, le=86_400,
                              description="Seconds after a punch during which the same employee gets "
                              "'already punched at HH:MM' and no new record.")
    verify_window_s: float = Field(10.0, ge=1, le=120,
                                   description="card_and_face: seconds after the card to show the face.")
    verify_threshold: float = Field(0.30, ge=0.0, le=1.0,
                                    description="card_and_face: cosine similarity the face must reach "
                                    "against the card holder's own templates (1:1).")
    card_hint_after_attempts: int = Field(3, ge=1, le=50,
                                          description="Unrecognised walk-ups in a row before the screen "
                                          "suggests using the card.")


class LivenessConfig(StrictModel):
    """Checks that a live person, not a photo or a screen, is in front of the camera."""

    enabled: bool = Field(True, description="Require a natural blink (active check) before a face punch.")
    window_s: float = Field(8.0, ge=1, le=60,
                            description="Seconds of a walk-up within which the blink must be seen.")
    closed_ratio: float = Field(0.70, gt=0, lt=1,
                                description="An eye counts as closing when its openness falls below this "
                                "fraction of the person's open-eye baseline.")
    reopen_ratio: float = Field(0.88, gt=0, le=1,
                                description="...and as open again above this fraction of the baseline.")
    max_blink_s: float = Field(0.8, ge=0.1, le=3,
                               description="Longest eye closure still counted as a blink (seconds).")
    min_baseline_frames: int = Field(3, ge=1, le=30,
                                     description="Open-eye frames needed before a dip can count as a blink.")
    require_head_turn: bool = Field(False, description="Also require a small head turn (yaw change).")
    head_turn_deg: float = Field(10.0, ge=3, le=45,
                                 description="Yaw change in degrees that counts as a head turn.")
    passive_model: ConfigPath | None = Field(
        None, description="Optional insightface passive liveness model (80x80 ONNX, insightface.addons."
        "liveness). Absent: only the active check runs, and the daemon says so once at start.")
    passive_threshold: float = Field(0.8, ge=0, le=1,
                                     description="Live probability the passive model must reach.")

    @model_validator(mode="after")
    def verify_ratios_ordered(self) -> LivenessConfig:
        if self.reopen_ratio <= self.closed_ratio:
            raise ValueError("liveness.reopen_ratio must be greater than liveness.closed_ratio")
        return self


class ClockConfig(StrictModel):
    """When the wall clock is trusted (a Raspberry Pi has no real-time clock)."""

    trust_kernel_ntp: bool = Field(True, description="Trust the clock when the kernel reports NTP sync.")
    ntp_check_interval_s: float = Field(30.0, ge=1, le=3600,
                                        description="Seconds between checks of the kernel's NTP status.")
    gps_max_offset_s: float = Field(2.0, ge=0.1, le=3600,
                                    description="Largest wall-clock error against GPS UTC still trusted.")
    gps_max_age_s: float = Field(600.0, ge=1, le=86_400,
                                 description="A GPS time reading older than this no longer vouches for the clock.")
    hub_max_offset_s: float = Field(5.0, ge=1, le=3600,
                                    description="Largest wall-clock error against the hub's Date header still "
                                    "trusted (the header has 1 s resolution).")
    hub_max_age_s: float = Field(3600.0, ge=10, le=7 * 86_400,
                                 description="A hub time reading older than this no longer vouches for the clock.")
    anchor_interval_s: float = Field(3600.0, ge=10, le=86_400,
                                     description="While trusted, how often to record a monotonic-to-UTC anchor "
                                     "that lets the hub correct unverified punches.")


class PipelineConfig(StrictModel):
    """The frame pipeline's pace: cheap while nobody is in view, full rate during a walk-up."""

    idle_interval_ms: int = Field(1000, ge=0, le=10_000,
                                  description="While nobody is in view and the picture does not change, run the "
                                  "detector only this often (ms); any motion runs it at once.")
    motion_threshold: float = Field(3.0, ge=0, le=255,
                                    description="Mean absolute grey-level change (0-255) of a small thumbnail "
                                    "that counts as motion; 0 turns motion gating off.")


class EventsConfig(StrictModel):
    """Where the daemon's events (what the screen shows) go besides the log."""

    stdout_json: bool = Field(True, description="Print each event as one JSON line on stdout.")
