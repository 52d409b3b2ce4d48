"""Feedback: the recording no-op, and the gpiozero driver on gpiozero's own mock pins."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

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


@pytest.fixture
def mock_pins(monkeypatch):
    gpiozero = pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    monkeypatch.setattr(gpiozero.Device, "pin_factory", factory)
    yield factory
    factory.reset()


def wait_until(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_gpio_buzzer_leds_and_relay(mock_pins) -> None:
    config = FeedbackConfig(driver="gpio", buzzer_pin=18, ok_led_pin=23, error_led_pin=24, relay_pin=25,
                            relay_active_high=False, relay_open_s=0.2, beep_ms=20)
    feedback = open_feedback(config)
    with feedback:
        assert feedback.state == DeviceState.RUNNING, feedback.reason
        buzzer, relay = mock_pins.pin(18), mock_pins.pin(25)
        assert relay.state is True  # active-low relay board: HIGH means off
        feedback.signal(Signal.REJECTED)
        assert wait_until(lambda: len([c for c in buzzer.states if c.state]) >= 3)  # three beeps
        assert wait_until(lambda: mock_pins.pin(24).state is True or len(mock_pins.pin(24).states) > 1)
        feedback.open_door()
        assert wait_until(lambda: relay.state is False)  # energised
        assert wait_until(lambda: relay.state is True)   # and released after relay_open_s
    assert feedback.state == DeviceState.STOPPED


def test_gpio_without_a_usable_pin_library_fails_with_a_reason(monkeypatch) -> None:
    gpiozero = pytest.importorskip("gpiozero")
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
