"""Feedback to the person at the kiosk: buzzer, LEDs, door relay (gpiozero), or a recording no-op."""

from __future__ import annotations

import collections
import enum
import logging
import time

from hardware.config import FeedbackConfig
from hardware.device import Device, DeviceState

log = logging.getLogger(__name__)

HISTORY_EVENTS = 64
LED_ON_S = 1.5


class Signal(enum.Enum):
    ACCEPTED = "accepted"    # one short beep, green LED
    REJECTED = "rejected"    # three short beeps, red LED
    ATTENTION = "attention"  # two beeps (e.g. "look at the camera", "card not known")


BEEPS = {Signal.ACCEPTED: 1, Signal.REJECTED: 3, Signal.ATTENTION: 2}


class Feedback(Device):
    """Signals and the door. Every call is recorded in ``history`` (mono_ns, what), whatever the
    driver, so tests and health reports can see what the kiosk told people. Calls never block:
    gpiozero runs blinks in its own background threads; no thread of our own is needed."""

    kind = "feedback"

    def __init__(self, config: FeedbackConfig, name: str = "feedback") -> None:
        super().__init__(name)
        self.config = config
        self.history: collections.deque[tuple[int, str]] = collections.deque(maxlen=HISTORY_EVENTS)

    def describe(self) -> str:
        return "none"

    def signal(self, kind: Signal) -> None:
        self.history.append((time.monotonic_ns(), kind.value))
        if self.state == DeviceState.RUNNING:
            self._signal(kind)

    def open_door(self) -> None:
        self.history.append((time.monotonic_ns(), "door"))
        if self.state == DeviceState.RUNNING:
            self._open_door()

    def start(self) -> None:
        self._stop.clear()
        self._open()

    def stop(self, timeout_s: float = 0) -> None:
        self._close()
        if self.state != DeviceState.FAILED:
            self._set_state(DeviceState.STOPPED, "stopped")

    def _open(self) -> None:
        self._set_state(DeviceState.RUNNING, "no_feedback")

    def _close(self) -> None:
        """Release outputs."""

    def _signal(self, kind: Signal) -> None:
        """Drive the outputs for one signal."""

    def _open_door(self) -> None:
        """Pulse the relay."""


class GpioFeedback(Feedback):
    """Buzzer, LEDs and relay on Raspberry Pi / Jetson GPIO through gpiozero (imported lazily)."""

    def __init__(self, config: FeedbackConfig, name: str = "feedback") -> None:
        super().__init__(config, name)
        self._outputs: dict[str, object] = {}

    def describe(self) -> str:
        pins = {"buzzer": self.config.buzzer_pin, "ok": self.config.ok_led_pin,
                "error": self.config.error_led_pin, "relay": self.config.relay_pin}
        return "gpio " + " ".join(f"{k}={v}" for k, v in pins.items() if v is not None)

    def _open(self) -> None:
        try:
            import gpiozero
        except ImportError:
            self._set_state(DeviceState.FAILED, "gpiozero_missing")
            return
        cfg = self.config
        try:
            if cfg.buzzer_pin is not None:
                self._outputs["buzzer"] = gpiozero.Buzzer(cfg.buzzer_pin)
            if cfg.ok_led_pin is not None:
                self._outputs["ok"] = gpiozero.LED(cfg.ok_led_pin)
            if cfg.error_led_pin is not None:
                self._outputs["error"] = gpiozero.LED(cfg.error_led_pin)
            if cfg.relay_pin is not None:
                self._outputs["relay"] = gpiozero.DigitalOutputDevice(
                    cfg.relay_pin, active_high=cfg.relay_active_high, initial_value=False)
        except Exception as exc:  # gpiozero raises many types (BadPinFactory, GPIOPinInUse...)
            self._close()
            self._set_state(DeviceState.FAILED, "gpio_error", error=f"{type(exc).__name__}: {exc}")
            return
        self._set_state(DeviceState.RUNNING, "gpio_pins", pins=self.describe())

    def _close(self) -> None:
        relay = self._outputs.get("relay")
        if relay is not None:
            relay.off()  # a stopped kiosk must never leave the door open
        for output in self._outputs.values():
            output.close()
        self._outputs.clear()

    def _signal(self, kind: Signal) -> None:
        beep_s = self.config.beep_ms / 1000
        buzzer = self._outputs.get("buzzer")
        if buzzer is not None:
            buzzer.beep(on_time=beep_s, off_time=beep_s, n=BEEPS[kind], background=True)
        led = self._outputs.get("ok" if kind == Signal.ACCEPTED else "error")
        if led is not None and kind != Signal.ATTENTION:
            led.blink(on_time=LED_ON_S, off_time=0.01, n=1, background=True)

    def _open_door(self) -> None:
        relay = self._outputs.get("relay")
        if relay is not None:
            relay.blink(on_time=self.config.relay_open_s, off_time=0.01, n=1, background=True)

    @property
    def outputs(self) -> dict[str, object]:
        """The gpiozero devices by role (buzzer, ok, error, relay) - for tests and diagnostics."""
        return dict(self._outputs)


def open_feedback(config: FeedbackConfig, name: str = "feedback") -> Feedback:
    """Feedback for a [feedback] section, not started: GPIO or the recording no-op."""
    if config.driver == "gpio":
        return GpioFeedback(config, name)
    return Feedback(config, name)
