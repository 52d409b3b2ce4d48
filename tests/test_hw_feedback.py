"""Feedback: the recording no-op, and the gpiozero driver on gpiozero's own mock pins."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from waiting import wait_for

from conftest import skip_or_fail
from hardware.config import FeedbackConfig
from hardware.device import DeviceState
from hardware.feedback import Signal, open_feedback


def test_no_hardware_records_every_signal() -> None:
    feedback = open_feedback(FeedbackConfig())
    with feedback:
        assert feedback.state == DeviceState.RUNNING
        feedback.signal(Signal.ACCEPTED)
        feedback.signal(Signal.REJECTED)
        feedback.open_door()
    assert [what for _, what in feedback.history] == ["accepted", "rejected", "door"]
    assert feedback.state == DeviceState.STOPPED


def require_gpiozero():  # noqa: ANN201
    try:
        import gpiozero
    except ImportError:
        skip_or_fail("gpiozero is not installed: pip install -c constraints.txt -e '.[dev]'")
    return gpiozero


@pytest.fixture
def mock_pins(monkeypatch):
    gpiozero = require_gpiozero()
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    monkeypatch.setattr(gpiozero.Device, "pin_factory", factory)
    yield factory
    factory.reset()


def levels(pin) -> list[bool]:  # noqa: ANN001 - a gpiozero MockPin
    """Every level the pin was driven to, in order (gpiozero's mock pins record them)."""
    return [change.state for change in pin.states]


def test_gpio_buzzer_leds_and_relay(mock_pins) -> None:
    config = FeedbackConfig(driver="gpio", buzzer_pin=18, ok_led_pin=23, error_led_pin=24, relay_pin=25,
                            relay_active_high=False, relay_open_s=0.2, beep_ms=20)
    feedback = open_feedback(config)
    with feedback:
        assert feedback.state == DeviceState.RUNNING, feedback.reason
        buzzer, ok_led, error_led, relay = (mock_pins.pin(n) for n in (18, 23, 24, 25))
        assert levels(relay) == [False, True]  # active-low relay board: driven HIGH at once, meaning off
        feedback.signal(Signal.REJECTED)
        feedback.open_door()
        # Each output runs its pattern in its own thread: wait until each has come back to rest.
        wait_for(lambda: levels(error_led)[-1:] == [False] and len(levels(error_led)) > 1
                 and len(levels(buzzer)) >= 7 and len(levels(relay)) >= 4, 30,
                 what=lambda: f"buzzer {levels(buzzer)}, error LED {levels(error_led)}, relay {levels(relay)}")
        assert levels(error_led) == [False, True, False]  # one blink
        assert levels(buzzer) == [False, True, False, True, False, True, False]  # three beeps
        assert levels(relay) == [False, True, False, True]  # energised, then released after relay_open_s
        assert levels(ok_led) == [False]
    assert feedback.state == DeviceState.STOPPED


def test_gpio_without_a_usable_pin_library_fails_with_a_reason(monkeypatch) -> None:
    gpiozero = require_gpiozero()
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-pin-library")
    feedback = open_feedback(FeedbackConfig(driver="gpio", buzzer_pin=18))
    feedback.start()
    assert feedback.state == DeviceState.FAILED
    assert "cannot drive GPIO" in feedback.reason and "no-such-pin-library" in feedback.reason
    feedback.signal(Signal.ACCEPTED)  # still recorded, never raises
    assert feedback.history[-1][1] == "accepted"
    feedback.stop()


def test_gpio_config_rules() -> None:
    with pytest.raises(ValidationError, match="share one GPIO pin"):
        FeedbackConfig(driver="gpio", buzzer_pin=18, relay_pin=18)
    with pytest.raises(ValidationError, match="needs at least one"):
        FeedbackConfig(driver="gpio")
