"""Graceful stop: the first SIGINT/SIGTERM (or Slurm's preemption signal) lets the step finish
and a checkpoint be written."""
from __future__ import annotations

import os
import signal
import sys
import threading


class StopRequest:
    """Context manager that turns the first SIGINT, SIGTERM or one of `extra` signals into
    `.requested = True`, and keeps which one came first in `.signal` (a preemption is told from a
    stop by it).

    A second signal exits at once; the atomic writes keep every file on disk whole.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, extra: tuple[signal.Signals, ...] = ()) -> None:
        self.requested = False
        self.signal: signal.Signals | None = None
        self.signals = tuple(dict.fromkeys((*self.SIGNALS, *extra)))
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            os._exit(128 + signum)
        self.requested = True
        self.signal = signal.Signals(signum)
        # A print, not the logger: a signal handler must not wait on the logging lock.
        print(f"\n{self.signal.name}: finishing this step and saving a checkpoint "
              "(send it again to exit at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: workers ignore SIGINT, SIGTERM and SIGUSR1. A signal sent to
    the whole process group (Ctrl+C in a terminal, `timeout`, `docker stop`, a batch scheduler)
    would otherwise kill them mid-epoch and make the next batch raise in the main process, losing
    the steps since the last checkpoint; this way only the main process acts on it (finishes the
    step, saves) and then shuts its workers down."""
    for sig in (*StopRequest.SIGNALS, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
