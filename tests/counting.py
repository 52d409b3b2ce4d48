"""Counting real work in a test: ``record_calls`` wraps a real function or method so each call is recorded while
the real one still runs and answers (a measure of what the code under test did, not a stand-in for it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def record_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str,  # noqa: ANN401 - a module or a class
                 keep: Callable[..., Any] = lambda *args: args) -> list[Any]:
    """Every call of ``owner.name`` from now to the test's end, as ``keep(*args)`` gives it (by default the
    positional arguments; a method's first one is its instance)."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - whatever the real one takes and gives
        calls.append(keep(*args))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls
