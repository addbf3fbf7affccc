"""A run's folder: the contract between the trainer and whoever watches it (the app's Train tab,
`img2img push`, a scheduler on another machine). The trainer writes, each file atomically or
append-only:

- `config.json`: the finished RunConfig;
- `status.json`: a `RunStatus` (state, step, epoch, totals, images/s, the last error as one
  line, pid and host), rewritten at each metrics row and when the state changes;
- `metrics.csv`: `MetricsRow`s, each tagged `train` (losses, lr, images/s) or `eval`
  (validation FID/KID, L1, ...);
- `checkpoints/` (latest.pt, best.pt, step_*.pt) and `samples/step_*.png`.

Readers use this module, never the log's words."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import resource
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from ..config import RunConfig
from ..errors import Img2ImgError
from ..files import atomic_write_text

CONFIG_FILE = "config.json"
REQUEST_FILE = "request.json"  # the config a run was asked to start from (the app's, a Slurm job's)
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.csv"
# Present while a stop is asked of the run (the app's Stop; a scheduler's preemption): the trainer
# stops at its next step as on SIGINT, which a process can miss while it starts.
STOP_FILE = "stop.requested"

RunState = Literal["starting", "running", "finished", "stopped", "failed"]
RowKind = Literal["train", "eval"]
# metrics.csv columns that describe a row rather than measure it.
ROW_KEYS = ("step", "epoch", "kind")


SPEED_WEIGHT = 0.2


@dataclass
class RunStatus:
    """What a run is doing, as its process last said. `starting` and `running` are claims: a
    reader checks that process `pid` on `host` still lives (`RunFolder.process_alive`)."""

    state: RunState
    step: int = 0
    epoch: int = 0
    total_steps: int | None = None
    total_epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int = 1
    images_per_s: float | None = None
    # images_per_s smoothed over the recent log windows (what an ETA should use): each window
    # counts SPEED_WEIGHT, the windows before it the rest.
    speed: float | None = None
    error: str = ""
    device: str = ""  # what it trains on, in words ("cpu", "cuda (NVIDIA H200), 8 ranks")
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    updated: float = field(default_factory=time.time)

    @property
    def claims_to_run(self) -> bool:
        return self.state in ("starting", "running")


@dataclass
class MetricsRow:
    kind: RowKind
    step: int
    epoch: int
    values: dict[str, float | str]


def process_start_time() -> float:
    """When this process started, from /proc on Linux (its start in clock ticks after boot);
    elsewhere, when this module was imported."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK") - 1.0  # btime is whole seconds
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


PROCESS_STARTED = process_start_time()


def one_line(error: BaseException | str) -> str:
    """An error as the one line a page shows: its first line, without a traceback. Running out
    of memory says so, with this process's own cap where it has one (the app's runs)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, MemoryError) or "can't allocate memory" in text:
        cap = resource.getrlimit(resource.RLIMIT_DATA)[0]
        return "out of memory" + ("" if cap == resource.RLIM_INFINITY else
                                  f": this run's process may take {cap / 1e6:,.0f} MB (the app's --max-run-process-mb)")
    return text.splitlines()[0]


def read_config(path: Path | str) -> RunConfig:
    """A run's config.json (or any file of RunConfig.to_dict's JSON)."""
    from ..methods import run_config_from_dict

    try:
        return run_config_from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as e:
        raise Img2ImgError(f"{path}: {one_line(e)}") from None


class RunFolder:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._written: RunStatus | None = None  # what this process wrote last: no re-read per row

    # ---- status ---------------------------------------------------------------------------------
    def status(self) -> RunStatus | None:
        """The newest status, or None where the trainer has written none (or an unreadable one)."""
        try:
            data = json.loads((self.path / STATUS_FILE).read_text())
            known = {f.name for f in dataclasses.fields(RunStatus)}
            return RunStatus(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError):
            return None

    def write_status(self, status: RunStatus) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        status.updated = time.time()
        atomic_write_text(self.path / STATUS_FILE, json.dumps(dataclasses.asdict(status), indent=1))
        self._written = status

    def update_status(self, **changes) -> RunStatus:
        """The status with `changes`, written, from this process (pid and host are its own)."""
        old = self._written or self.status()
        base = dataclasses.replace(old, pid=os.getpid(), host=socket.gethostname()) if old else RunStatus("starting")
        rate = changes.get("images_per_s")
        if "images_per_s" in changes:
            changes["speed"] = None if rate is None else (
                rate if base.speed is None else round(SPEED_WEIGHT * rate + (1 - SPEED_WEIGHT) * base.speed, 3))
        status = dataclasses.replace(base, **changes)
        self.write_status(status)
        return status

    @contextmanager
    def reporting(self, main: bool = True) -> Iterator[None]:
        """Around a run's whole life in its process: `starting` first, then how it ended if it
        ended by an exception (a Ctrl-C before training began is `stopped`, anything else
        `failed` with its one line). The trainer reports `running`, `finished` and `stopped`.
        Only into a folder that exists: a run refused before it began leaves no folder behind,
        unless whoever started it made one to watch (the app)."""
        main = main and self.path.is_dir()
        if main:
            self.update_status(state="starting", error="", images_per_s=None)
        try:
            yield
        except KeyboardInterrupt:
            if main:
                self.update_status(state="stopped")
            raise
        except BaseException as e:
            if main and not (isinstance(e, SystemExit) and not e.code):
                self.update_status(state="failed", error=one_line(e))
            raise

    def begin(self, cfg: RunConfig, step: int, epoch: int, schedule, device: str = "") -> "MetricsLog":
        """A training process starts (or resumes) at `step` on `device`: its config, `running`
        with the schedule's totals, and its metrics log (rows after `step` dropped)."""
        self.write_config(cfg)
        self.update_status(state="running", step=step, epoch=epoch, total_steps=schedule.total_steps,
                           steps_per_epoch=schedule.steps_per_epoch, total_epochs=schedule.total_epochs,
                           batch_size=cfg.data.batch_size, error="", device=device)
        return MetricsLog(self.path, after_step=step)

    def request_stop(self) -> None:
        atomic_write_text(self.path / STOP_FILE, f"{time.time()}\n")

    def clear_stop(self) -> None:
        (self.path / STOP_FILE).unlink(missing_ok=True)

    def stop_requested(self) -> bool:
        """Whether a stop was asked since this process started (an older request is stale)."""
        try:
            return (self.path / STOP_FILE).stat().st_mtime >= PROCESS_STARTED
        except OSError:
            return False

    def process_alive(self, status: RunStatus) -> bool | None:
        """Whether the process that wrote `status` lives: None when it ran on another host."""
        if status.host != socket.gethostname():
            return None
        return process_alive(status.pid, self.path)

    # ---- config and metrics -----------------------------------------------------------------------
    def write_config(self, cfg: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2))

    def config(self) -> RunConfig:
        return read_config(self.path / CONFIG_FILE)

    def metrics(self) -> list[MetricsRow]:
        """metrics.csv's rows, numbers as floats; a half-written last line (the trainer appends
        while others read) is left out."""
        try:
            with open(self.path / METRICS_FILE, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            return []
        out = []
        for row in rows:
            try:
                step, epoch = int(row["step"]), int(float(row.get("epoch") or 0))
                values = {k: _value(v) for k, v in row.items() if k not in ROW_KEYS and k is not None and v}
            except (KeyError, TypeError, ValueError):
                continue
            # Rows from before the kind column: only training rows measured images/s.
            kind = row.get("kind") or ("train" if "images_per_s" in values else "eval")
            out.append(MetricsRow(kind, step, epoch, values))
        return out

    def checkpoint(self) -> Path | None:
        """best.pt (lowest FID) where the run has one, else latest.pt."""
        folder = self.path / "checkpoints"
        return next((p for p in (folder / "best.pt", folder / "latest.pt") if p.is_file()), None)

    def newest_sample(self) -> Path | None:
        samples = sorted((self.path / "samples").glob("step_*.png"))
        return samples[-1] if samples else None


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # e.g. the Inception weights' name beside FID


def process_alive(pid: int, folder: Path) -> bool:
    """Whether process `pid` lives and is this run's (a pid is reused once its process is gone):
    on Linux, its command line names the run's folder (as given: relative or absolute) and it is
    no zombie."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self").exists():
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            zombie = stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z"
        except OSError:
            return False
        return not zombie and any(folder.name.encode() in w for w in words)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class MetricsLog:
    """metrics.csv (rows of any columns, kept across resumes) plus TensorBoard scalars.

    Rows are appended. The file is rewritten only when a row brings a new column (a handful of
    times per run: the first loss row, the first FID row) and once on resume, to drop rows
    logged after the checkpoint, which are about to be trained again.
    """

    def __init__(self, out: Path, after_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = out / METRICS_FILE
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=after_step + 1 if after_step else None)
        self.rows: list[dict] = []
        self.columns: list[str] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= after_step]
            self._rewrite()

    def write(self, kind: RowKind, step: int, epoch: int, values: dict) -> None:
        row = {"step": step, "epoch": epoch, "kind": kind, **values}
        self.rows.append(row)
        if any(k not in self.columns for k in row):
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns).writerow(row)
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, step)

    @property
    def last_eval_step(self) -> int | None:
        """The step of the newest evaluation row, if any."""
        return next((int(r["step"]) for r in reversed(self.rows) if r.get("kind") == "eval"), None)

    def _rewrite(self) -> None:
        self.columns = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue() if self.columns else "")

    def close(self) -> None:
        self.writer.close()
