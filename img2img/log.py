"""Where a run's words go: messages through one `logging` logger (a run's numbers go into its
folder: training/run_folder.py).

The library only logs; front ends choose where messages appear (`log_to_console`). Console
lines go through tqdm, so they never tear a progress bar."""
from __future__ import annotations

import logging
import sys

from tqdm import tqdm

logger = logging.getLogger("img2img")


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            # INFO to stdout (what happened), warnings and errors to stderr; looked up at each
            # call, so redirected streams (tests, notebooks) are honoured.
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            tqdm.write(self.format(record), file=stream)
        except Exception:
            self.handleError(record)


def log_to_console(level: int = logging.INFO) -> None:
    """Show img2img's messages on the console (idempotent)."""
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        logger.addHandler(_TqdmHandler())
    logger.setLevel(level)
    logger.propagate = False
