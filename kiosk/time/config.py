"""Config section of trusted time: [clock] (NTP, GPS and hub sources, anchors)."""

from __future__ import annotations

from pydantic import Field

from kiosk.base.config import StrictModel


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
    step_max_s: float = Field(10.0, ge=0.5, le=86_400,
                              description="A wall clock that moved this many seconds more or less than the "
                              "monotonic clock since the last reading was stepped (set by hand, or a bad time "
                              "source): the next punch is flagged clock_jump. NTP's slewing (at most 0.05 %) is "
                              "allowed on top.")
    anchor_interval_s: float = Field(3600.0, ge=10, le=86_400,
                                     description="While trusted, how often to record a monotonic-to-UTC anchor "
                                     "that lets the hub correct unverified punches.")
