"""Config sections for the hardware: [camera], [rfid], [gps], [feedback], [geofence]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from hardware.model import StrictModel
from hardware.sources import parse_source

FAKE_PREFIX = "fake:"


class CameraConfig(StrictModel):
    """The camera. Empty source = no camera (card-only kiosk)."""

    source: str = Field("", description="Camera source: '' or 'none' (no camera), 'picamera2:0', "
                        "'v4l2:/dev/video0', 'gst:PIPELINE' (e.g. nvarguscamerasrc on a Jetson), "
                        "'rtsp://HOST/PATH', 'file:PATH?loop=1', 'images:DIR?fps=10&loop=0' "
                        "(fps=0: every frame, as fast as it is consumed), 'fake:?fps=15'.")
    width_px: int = Field(0, ge=0, le=7680, description="Frame width asked of the camera; 0 keeps the "
                          "source's own. Frames arriving at another size are resized to width_px x height_px.")
    height_px: int = Field(0, ge=0, le=4320,
                           description="Frame height asked of the camera; 0 keeps the source's own.")
    fps: float = Field(15.0, ge=1, le=120, description="Frame rate asked of live cameras (frames/s).")
    rotation_deg: Literal[0, 90, 180, 270] = Field(0, description="Clockwise rotation applied to every "
                                                   "frame (degrees).")
    mirror: bool = Field(False, description="Flip frames left-right after rotating (a mirror-like view).")
    stall_timeout_s: float = Field(5.0, ge=0.05, le=300, description="Seconds without a frame before the camera "
                                   "is declared STALLED and reopened.")
    reopen_backoff_s: float = Field(1.0, ge=0.01, le=60, description="First wait before reopening a stalled or "
                                    "missing camera; doubles on each failure up to reopen_backoff_max_s.")
    reopen_backoff_max_s: float = Field(30.0, ge=0.01, le=600, description="Longest wait between reopen attempts (s).")
    queue_frames: int = Field(2, ge=1, le=64, description="Frames buffered for the pipeline; when full the "
                              "OLDEST frame is dropped so the camera never waits.")

    @field_validator("source")
    @classmethod
    def verify_camera_source_syntax(cls, value: str) -> str:
        parse_source(value)
        return value.strip()

    @model_validator(mode="after")
    def verify_backoff_order(self) -> CameraConfig:
        if self.reopen_backoff_max_s < self.reopen_backoff_s:
            raise ValueError("reopen_backoff_max_s must be >= reopen_backoff_s")
        return self


class RfidConfig(StrictModel):
    """The card reader. No port = no reader."""

    port: str | None = Field(None, description="Serial port of the reader (e.g. /dev/serial/by-id/usb-...); for "
                             "protocol 'hid' the keyboard event device (/dev/input/by-id/...-event-kbd); "
                             "'fake:' for the built-in fake. Unset: no card reader.")
    protocol: Literal["em4100", "line", "wiegand", "hid"] = Field(
        "em4100", description="em4100: RDM6300-style STX + 10 hex + 2 hex XOR checksum + ETX; line: the number "
        "then CR/LF; wiegand: a Wiegand-26/34 bridge printing the bits, one frame per line; hid: a USB reader "
        "that types the number as a keyboard (needs evdev).")
    baud: int = Field(9600, ge=300, le=921600, description="Serial speed (bits/s); RDM6300 modules use 9600.")
    line_format: Literal["dec", "hex"] = Field("dec", description="How 'line' and 'hid' readers print the "
                                               "number: decimal digits or hex digits.")
    card_format: Literal["dec10", "hex10", "fc_card"] = Field(
        "dec10", description="Canonical card id stored and matched: dec10 = the 10-digit decimal printed on most "
        "cards (low 32 bits), hex10 = 10 hex digits, fc_card = 'facility,number' (e.g. 123,14706).")
    hold_off_s: float = Field(2.0, ge=0, le=60, description="A card seen again within this many seconds of its "
                              "last sighting is the same presentation (readers repeat while a card is held).")
    reopen_interval_s: float = Field(3.0, ge=0.05, le=300, description="Seconds between attempts to reopen a "
                                     "vanished reader (unplugged USB).")


class GpsConfig(StrictModel):
    """The GPS receiver (NMEA 0183 over serial). No port = no GPS."""

    port: str | None = Field(None, description="Serial port of the receiver (e.g. /dev/ttyACM0, /dev/serial0); "
                             "'fake:?lat=31.23&lon=121.47' for the built-in fake. Unset: GPS off.")
    baud: int = Field(9600, ge=300, le=921600, description="Serial speed (bits/s); most receivers ship at 9600.")
    max_fix_age_s: float = Field(5.0, ge=0.5, le=3600, description="A fix older than this is stale: no position, "
                                 "no GPS time.")
    stall_timeout_s: float = Field(5.0, ge=0.05, le=300, description="Seconds without a valid NMEA sentence before "
                                   "the receiver is STALLED and the port is reopened.")
    reopen_interval_s: float = Field(3.0, ge=0.05, le=300, description="Seconds between attempts to reopen a "
                                     "vanished receiver.")
    uere_m: float = Field(5.0, ge=0.5, le=100, description="User equivalent range error of the receiver (m); "
                          "a fix's accuracy_m is HDOP x uere_m (about one standard deviation).")


class FeedbackConfig(StrictModel):
    """Buzzer, LEDs and door relay on GPIO (BCM numbering)."""

    driver: Literal["none", "gpio"] = Field("none", description="none: no feedback hardware (signals are only "
                                            "recorded); gpio: drive the pins below through gpiozero.")
    buzzer_pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) of an active buzzer; unset: none.")
    ok_led_pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) of the green 'accepted' LED.")
    error_led_pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) of the red 'rejected' LED.")
    relay_pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) of the door relay; unset: no door.")
    relay_active_high: bool = Field(True, description="False for relay boards that switch on a LOW input.")
    relay_open_s: float = Field(3.0, ge=0.1, le=60, description="Seconds the door relay stays energised.")
    beep_ms: int = Field(120, ge=10, le=2000, description="Length of one beep (ms).")

    @model_validator(mode="after")
    def verify_gpio_pins(self) -> FeedbackConfig:
        pins = [p for p in (self.buzzer_pin, self.ok_led_pin, self.error_led_pin, self.relay_pin) if p is not None]
        if len(pins) != len(set(pins)):
            raise ValueError("two feedback outputs share one GPIO pin")
        if self.driver == "gpio" and not pins:
            raise ValueError("driver 'gpio' needs at least one of buzzer_pin, ok_led_pin, error_led_pin, relay_pin")
        return self


class GeofenceConfig(StrictModel):
    """Where punches may be made: a circle around the branch, checked against the GPS fix."""

    policy: Literal["off", "flag", "refuse"] = Field("off", description="off: no check; flag: punches outside "
                                                     "(or without a usable fix) are marked; refuse: punches "
                                                     "clearly outside are refused, uncertain ones flagged.")
    lat: float | None = Field(None, ge=-90, le=90, description="Latitude of the branch (decimal degrees, WGS84).")
    lon: float | None = Field(None, ge=-180, le=180, description="Longitude of the branch (decimal degrees, WGS84).")
    radius_m: float = Field(200.0, ge=5, le=100_000, description="Radius of the allowed circle (m).")
    max_accuracy_m: float = Field(100.0, ge=1, le=10_000, description="Fixes less accurate than this (HDOP x "
                                  "gps.uere_m) give no verdict: 'uncertain'.")

    @model_validator(mode="after")
    def verify_geofence_has_center(self) -> GeofenceConfig:
        if self.policy != "off" and (self.lat is None or self.lon is None):
            raise ValueError(f"geofence policy {self.policy!r} needs lat and lon of the branch "
                             "(or set policy = \"off\")")
        return self
