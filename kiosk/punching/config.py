"""Config section of the punch policy: [punch] (mode, debounce, card+face)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kiosk.base.config import StrictModel

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
