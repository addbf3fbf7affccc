"""Where a run's words and numbers go: messages through one `logging` logger, metrics into an
append-only metrics.csv (and TensorBoard).

The library only logs; front ends choose where messages appear (`log_to_console`). Console
lines go through tqdm, so they never tear a progress bar."""
from __future__ import annotations

import csv
import io
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from .files import atomic_write_text

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


class MetricsLog:
    """metrics.csv (rows of any columns, kept across resumes) plus TensorBoard scalars.

    Rows are appended. The file is rewritten only when a row brings a new column (a handful of
    times per run: the first loss row, the first FID row) and once on resume, to drop rows
    logged after the checkpoint, which are about to be trained again.
    """

    def __init__(self, out: Path, after_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = out / "metrics.csv"
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=after_step + 1 if after_step else None)
        self.rows: list[dict] = []
        self.columns: list[str] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= after_step]
            self._rewrite()

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if any(k not in self.columns for k in row):
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns).writerow(row)
        for k, v in row.items():
            if k not in ("step", "epoch") and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, row["step"])

    def _rewrite(self) -> None:
        self.columns = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue() if self.columns else "")

    def close(self) -> None:
        self.writer.close()
