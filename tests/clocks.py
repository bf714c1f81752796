"""Clocks that tests move instead of sleeping: a frozen one for code that takes a clock, and a `time` module
stand-in for a library that reads `time.time()` itself (msal)."""

from __future__ import annotations

import time
from typing import Any


class FakeClock:
    """Epoch seconds that start at the real time and move only when a test says so."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ShiftedTime:
    """The `time` module with `time()` running `offset_s` ahead of the real clock, to put in place of a
    module's `time` (monkeypatch.setattr(module, "time", shifted)); everything else is the real module."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def time(self) -> float:
        return time.time() + self.offset_s

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)
