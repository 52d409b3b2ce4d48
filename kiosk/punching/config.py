"""Config section of the punch policy: [punch] (mode, debounce, card+face, direction, manual punches)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from kiosk.base.config import StrictModel
from kiosk.base.timeutil import LOCAL_TIME

PunchMode = Literal["face", "card", "face_or_card", "card_and_face"]
DirectionRule = Literal["auto", "buttons", "windows", "none"]


class DirectionWindow(StrictModel):
    """A time of day (local, HH:MM) whose punches have one direction; a window may pass midnight."""

    direction: Literal["IN", "OUT"] = Field(description="IN (上班) or OUT (下班).")
    start: str = Field(pattern=LOCAL_TIME, description="First minute of the window, local HH:MM.")
    end: str = Field(pattern=LOCAL_TIME, description="Last minute of the window, local HH:MM (inclusive).")


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
    direction: DirectionRule = Field(
        "auto", description="IN/OUT on each punch. auto: a person's first punch of the local work day is IN, "
        "then OUT, IN...; buttons: the screen shows 上班 / 下班 with auto's choice pre-selected, taken after "
        "direction_buttons_timeout_s (needs ui.enabled); windows: by time of day (direction_windows), none "
        "outside them; none: no direction.")
    day_starts_at: str = Field("04:00", pattern=LOCAL_TIME,
                               description="Local time (HH:MM) a work day starts, for direction = auto and "
                               "buttons: set it between two shifts (night shifts: e.g. 14:00).")
    direction_buttons_timeout_s: float = Field(
        4.0, ge=1, le=30, description="direction = buttons: seconds the 上班 / 下班 buttons wait for a tap "
        "before the pre-selected direction is recorded (the punch keeps the time of recognition).")
    direction_windows: list[DirectionWindow] = Field(
        [], max_length=16,  # copied for each config; `default_factory=list` costs ~2 ms at every start (signature)
        description="For direction = windows: e.g. [{direction = \"IN\", start = \"05:00\", end = \"11:59\"}].")
    manual_confirm_window_s: float = Field(
        300.0, ge=0, le=86_400, description="A second manual punch (correction) for the same person within this "
        "many seconds of the last one must be confirmed (the screen asks; the CLI needs --yes). 0: never ask.")

    @model_validator(mode="after")
    def verify_windows_for_windows(self) -> PunchConfig:
        if self.direction == "windows" and not self.direction_windows:
            raise ValueError("direction = 'windows' needs at least one entry in direction_windows")
        return self
