"""The [ui] config section: the kiosk screen's web server, language, admin mode and guided enrolment."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from kiosk.base.config import StrictModel

Language = Literal["en", "zh"]


def is_loopback(address: str) -> bool:
    """True for an address of this machine only (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return address.strip().lower() == "localhost"


class UiConfig(StrictModel):
    """The local web screen that `kiosk run` serves (shown by Chromium in kiosk mode)."""

    enabled: bool = Field(False, description="Serve the kiosk screen and admin mode while `kiosk run` runs.")
    allow_remote: bool = Field(False, description="Allow ui.bind off loopback (e.g. 0.0.0.0): the screen is then "
                               "served over plain http to the network, and the camera preview and the live events "
                               "(names) need the admin session for any client but this machine.")
    bind: str = Field("127.0.0.1", description="Address the screen's web server listens on. Keep 127.0.0.1: "
                      "admin mode is meant for the device's own touchscreen. Any other address needs "
                      "ui.allow_remote = true.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the screen's web server.")
    branch_title: str = Field("", max_length=64, description="Branch name shown at the top of the screen, "
                              "e.g. 'Pudong Sub-branch'; empty: device.branch (the branch code).")
    language: Language = Field("en", description="Default language of the screen: en or zh (the page also "
                               "honours ?lang=en|zh and has an on-screen switch).")
    result_display_s: float = Field(5.0, ge=1, le=60, description="Seconds a punch result stays on screen "
                                    "before the idle screen returns.")
    preview: bool = Field(True, description="Show the live camera picture with the detected face box.")
    preview_fps: float = Field(5.0, ge=0.5, le=30, description="Frames per second of the live preview "
                               "(each costs a JPEG encode on the device).")
    admin_idle_logout_s: float = Field(120.0, ge=10, le=3600, description="Seconds without a touch after "
                                       "which admin mode logs out by itself.")
    admin_max_failures: int = Field(5, ge=1, le=50, description="Wrong PINs in a row that lock admin mode.")
    admin_lockout_s: float = Field(300.0, ge=10, le=86_400, description="Seconds admin mode stays locked "
                                   "after admin_max_failures wrong PINs.")
    enrol_samples: int = Field(5, ge=1, le=20, description="Face samples a guided enrolment captures.")
    enrol_timeout_s: float = Field(60.0, ge=5, le=600, description="Seconds the guided capture may take "
                                   "before it gives up.")
    selftest_timeout_s: float = Field(15.0, ge=3, le=120, description="Seconds the final self-test "
                                      "('look again') may take to recognise the new person.")
    card_wait_s: float = Field(20.0, ge=3, le=120, description="Seconds admin mode waits for a card on the "
                               "reader when adding a card.")

    @field_validator("bind")
    @classmethod
    def verify_bind_is_an_address(cls, value: str, info: ValidationInfo) -> str:
        try:
            ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1 (or 0.0.0.0 for every interface)") from None
        if not is_loopback(value) and not info.data.get("allow_remote"):
            raise ValueError("serves the screen (camera preview, live events with names, the admin login) to "
                             "the network over plain http; keep 127.0.0.1, or set ui.allow_remote = true (the "
                             "preview and events then need the admin session from other machines)")
        return value.strip()
