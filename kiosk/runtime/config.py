"""Config sections of the running daemon: [pipeline] (frame pacing) and [events] (event output)."""

from __future__ import annotations

from pydantic import Field

from kiosk.base.config import StrictModel


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

    stdout_json: bool = Field(True, description="Print each event as one JSON line on stdout (ids, method, "
                              "times: never a name or a match score unless stdout_personal is on).")
    stdout_personal: bool = Field(False, description="Also print names and match scores in the stdout lines. "
                                  "Under systemd they then stay in the journal after the person is erased.")
