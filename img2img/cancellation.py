"""Stopping long work between its pieces: a caller (the app's request, a time limit) sets a
`StopSignal`; the loops over tiles, frames, slices and batch items call `check_stop()`, which
raises `Cancelled` once the signal is set. Outside `stop_on(...)` nothing can stop the work and
`check_stop` costs one context-variable lookup."""
from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator

from .errors import Img2ImgError


class Cancelled(Img2ImgError):
    """The work was stopped on request (a cancelled request, a disconnected client, a time limit)."""


class StopSignal:
    """Set by whoever may stop the work (with the reason the worker will raise), or by itself at
    a deadline."""

    def __init__(self, time_limit_s: float | None = None) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"
        self.deadline = time.monotonic() + time_limit_s if time_limit_s else None
        self.time_limit_s = time_limit_s

    def set(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        if not self._event.is_set() and self.deadline is not None and time.monotonic() > self.deadline:
            self.set(f"stopped after the time limit of {self.time_limit_s:g} s per request")
        return self._event.is_set()


_CURRENT: contextvars.ContextVar[StopSignal | None] = contextvars.ContextVar("img2img_stop", default=None)


@contextlib.contextmanager
def stop_on(signal: StopSignal) -> Iterator[StopSignal]:
    """Within the block, `check_stop()` raises once `signal` is set."""
    token = _CURRENT.set(signal)
    try:
        yield signal
    finally:
        _CURRENT.reset(token)


def check_stop() -> None:
    """Raise `Cancelled` if the work under way was asked to stop."""
    signal = _CURRENT.get()
    if signal is not None and signal.is_set():
        raise Cancelled(signal.reason)
