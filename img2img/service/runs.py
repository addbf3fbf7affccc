"""Training runs for the app: each in its own process, started as `img2img train` is, in a folder
under the server's runs folder, and watched through that folder alone.

A run's folder holds `run.json` (how it was asked for and launched), `train.log` (the process's
output) and what the trainer writes (config.json, schedule.json, metrics.csv, samples/,
checkpoints/). Nothing else is kept in memory that a restarted server would need: the processes
run in sessions of their own, so they outlive the page and the server, and a new server finds
them again from their folders. A run whose process is gone without saying how it ended is
`interrupted`, and resumes from its newest checkpoint."""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Img2ImgError
from ..files import atomic_write_text
from ..log import logger

RUN_FILE = "run.json"
LOG_FILE = "train.log"
TRAIN_COMMAND = (sys.executable, "-m", "img2img", "train")
# How a run's process ends, in the trainer's words (cli.run_train and Trainer.fit).
ENDED = re.compile(r"^(finished|stopped) at step (\d+)")
ERROR = re.compile(r"^(?:img2img[\w ]*: )?error: (.*)")


@dataclass
class RunView:
    """A run as the page shows it."""

    name: str
    state: str
    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    command: str = ""
    error: str = ""
    queue_position: int | None = None
    checkpoint: Path | None = None

    @property
    def can_resume(self) -> bool:
        return self.state in ("stopped", "interrupted", "failed", "cancelled")

    def line(self) -> str:
        parts = [f"**{self.name}**: {self.state}"]
        if self.state == "queued" and self.queue_position:
            parts[0] += f" (number {self.queue_position} in the queue)"
        if self.total_steps:
            parts.append(f"step {self.step}/{self.total_steps} ({100 * self.step / self.total_steps:.0f}%)")
        elif self.step:
            parts.append(f"step {self.step}")
        if self.total_epochs:
            parts.append(f"epoch {max(self.epoch, 1)}/{self.total_epochs}")
        if self.images_per_s and self.state in ("running", "stopping"):
            parts.append(f"{self.images_per_s:.2f} images/s")
            if self.eta_s is not None:
                parts.append(f"about {_duration(self.eta_s)} left")
        if self.error:
            parts.append(f"error: {self.error}")
        return ", ".join(parts)


@dataclass
class RunWatch:
    """What the page draws for a run: its metrics.csv rows, newest sample grid and log's end."""

    view: RunView
    losses: list[dict] = field(default_factory=list)  # {"step", "loss", "value"}
    evaluations: list[dict] = field(default_factory=list)  # {"step", "metric", "value"}
    sample: Path | None = None
    log_tail: str = ""


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class RunManager:
    """The runs under `runs_dir`. At most `max_runs` train at once; later ones wait in order.
    `train_command`: the argv that starts `img2img train` (this Python's by default)."""

    def __init__(self, runs_dir: Path | str, max_runs: int = 1, train_command: tuple[str, ...] = TRAIN_COMMAND) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_runs = max_runs
        self.train_command = tuple(train_command)
        self._lock = threading.RLock()
        self._closing = threading.Event()

    # Asking for work ---------------------------------------------------------------------------

    def submit(self, argv: list[str], name: str) -> str:
        """Queue a new run of `img2img train ARGV --out RUNS/NAME` (NAME made unique); returns its name."""
        with self._lock:
            folder = self._new_folder(name)
            self._write(folder, {"name": folder.name, "argv": list(argv), "command": self.command_text(argv, folder),
                                 "created": time.time(), "queued_at": time.time(), "state": "queued", "launches": 0})
            self.tick()
            return folder.name

    @staticmethod
    def command_text(argv: list[str], folder: Path) -> str:
        return shlex.join(["img2img", "train", *argv, "--out", str(folder)])

    def resume(self, name: str) -> None:
        """Queue a stopped, failed or interrupted run again, continuing from its newest checkpoint
        as `img2img train --resume auto` does (bit for bit)."""
        with self._lock:
            view = self.view(name)
            if not view.can_resume:
                raise Img2ImgError(f"{name}: is {view.state}; only a stopped, failed or interrupted run resumes")
            record = self._read(name)
            record.update(state="queued", queued_at=time.time(), stop_requested=False, exit_code=None, pid=None)
            self._write(self.runs_dir / name, record)
            self.tick()

    def stop(self, name: str) -> None:
        """What Ctrl-C sends (SIGINT, to the run's process group): the trainer finishes its step
        and writes a checkpoint. A queued run leaves the queue."""
        with self._lock:
            view = self.view(name)
            record = self._read(name)
            if view.state == "queued":
                record.update(state="stopped" if record.get("launches") else "cancelled")
                self._write(self.runs_dir / name, record)
                return
            if view.state not in ("running", "stopping"):
                raise Img2ImgError(f"{name}: is {view.state}, not running")
            record["stop_requested"] = True
            self._write(self.runs_dir / name, record)
            try:
                os.killpg(record["pid"], signal.SIGINT)
            except ProcessLookupError:
                pass

    def delete(self, name: str) -> None:
        """Remove a run's folder; a running run must be stopped first."""
        with self._lock:
            view = self.view(name)
            if view.state in ("running", "stopping"):
                raise Img2ImgError(f"{name}: is {view.state}; stop it before deleting it")
            shutil.rmtree(self.runs_dir / name)

    # Watching ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted((p.parent.name for p in self.runs_dir.glob(f"*/{RUN_FILE}")),
                      key=lambda n: -(self.runs_dir / n / RUN_FILE).stat().st_mtime)

    def runs(self) -> list[RunView]:
        return [self.view(name) for name in self.names()]

    def view(self, name: str, rows: list[dict] | None = None) -> RunView:
        """The run's state and progress; `rows`: its metrics.csv rows, where already read."""
        folder = self.folder(name)
        record = self._read(name)
        ended = _ended(folder)
        view = RunView(name=name, state=self._state(record, folder, ended), command=record.get("command", ""))
        if view.state == "queued":
            queued = sorted((r.get("queued_at", 0), n) for n in self.names()
                            if (r := self._read(n)).get("state") == "queued")
            view.queue_position = 1 + [n for _, n in queued].index(name)
        if view.state == "failed":
            view.error = self._error(folder, record)
        elif view.state == "interrupted" and (record.get("exit_code") or 0) < 0:
            view.error = f"killed by {signal.Signals(-record['exit_code']).name}"
        schedule = _read_json(folder / "schedule.json")
        view.total_steps, view.total_epochs = schedule.get("total_steps"), schedule.get("total_epochs")
        if view.total_steps and schedule.get("steps_per_epoch"):  # --max-steps may end it before the schedule
            view.total_epochs = min(view.total_epochs, -(-view.total_steps // schedule["steps_per_epoch"]))
        rows = read_metrics(folder) if rows is None else rows
        train_rows = [r for r in rows if "images_per_s" in r]
        if train_rows:
            last = train_rows[-1]
            view.step, view.epoch, view.images_per_s = int(last["step"]), int(last.get("epoch", 0)), last["images_per_s"]
            if view.total_steps and view.images_per_s:
                steps_per_s = view.images_per_s / schedule.get("batch_size", 1)
                view.eta_s = (view.total_steps - view.step) / steps_per_s
        if ended and view.state in ("finished", "stopped"):
            view.step = max(view.step, ended[1])
        view.checkpoint = self.checkpoint(name)
        return view

    def watch(self, name: str, log_lines: int = 15) -> RunWatch:
        folder = self.folder(name)
        rows = read_metrics(folder)
        watch = RunWatch(self.view(name, rows))
        for row in rows:
            if "images_per_s" in row:
                watch.losses += [{"step": row["step"], "loss": k, "value": v} for k, v in row.items()
                                 if k not in ("step", "epoch", "lr", "images_per_s") and v is not None]
            else:
                watch.evaluations += [{"step": row["step"], "metric": k, "value": v} for k, v in row.items()
                                      if k not in ("step", "epoch") and v is not None]
        samples = sorted((folder / "samples").glob("step_*.png"))
        watch.sample = samples[-1] if samples else None
        watch.log_tail = "\n".join(log_tail(folder / LOG_FILE, log_lines))
        return watch

    def signature(self, name: str) -> tuple:
        """What a watcher has seen of a run, from file sizes and times alone: when it is unchanged,
        nothing needs to be read or drawn again."""
        folder = self.folder(name)
        stats = []
        for path in (folder / RUN_FILE, folder / "metrics.csv", folder / LOG_FILE, folder / "samples"):
            try:
                st = path.stat()
                stats.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stats.append(None)
        return name, self._state(self._read(name), folder), *stats

    def folder(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith(".") or \
                not (self.runs_dir / name / RUN_FILE).is_file():
            raise Img2ImgError(f"{name or '(none)'}: no such run")
        return self.runs_dir / name

    def checkpoint(self, name: str) -> Path | None:
        """The run's best.pt (lowest FID) where it has one, else its latest.pt."""
        folder = self.runs_dir / name / "checkpoints"
        return next((p for p in (folder / "best.pt", folder / "latest.pt") if p.is_file()), None)

    # Processes ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Start queued runs, oldest first, while fewer than `max_runs` train."""
        with self._lock:
            records = {n: self._read(n) for n in self.names()}
            # From run.json and /proc alone: this runs every second, and reads no logs.
            active = sum(r.get("state") == "launched" and r.get("exit_code") is None and bool(r.get("pid"))
                         and _is_run_process(r["pid"], self.runs_dir / n) for n, r in records.items())
            for queued_at, name in sorted((r.get("queued_at", 0), n) for n, r in records.items()
                                          if r.get("state") == "queued"):
                if active >= self.max_runs:
                    break
                self._launch(name, records[name])
                active += 1

    def start_scheduler(self, every_s: float = 1.0) -> None:
        """A thread that starts queued runs as others end (until `close`)."""
        def loop():
            while not self._closing.wait(every_s):
                try:
                    self.tick()
                except Exception as e:  # a scheduler that dies would leave the queue stuck
                    logger.warning(f"warning: the run queue: {e}")
        threading.Thread(target=loop, name="img2img-runs", daemon=True).start()

    def close(self) -> None:
        self._closing.set()

    def _launch(self, name: str, record: dict) -> None:
        folder = self.runs_dir / name
        argv = list(record["argv"])
        if record.get("launches"):
            argv += ["--resume", "auto"]
        with open(folder / LOG_FILE, "ab") as log:
            if record.get("launches"):
                log.write(f"\n--- resumed {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            # A session of its own: the run outlives the page and the server, and a Ctrl-C meant
            # for the server does not reach it. Its output goes to the file, not to a pipe.
            child = subprocess.Popen([*self.train_command, *argv, "--out", str(folder)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        record.update(state="launched", pid=child.pid, started_at=time.time(), launches=record.get("launches", 0) + 1,
                      exit_code=None, stop_requested=False)
        self._write(folder, record)
        threading.Thread(target=self._reap, args=(name, child), daemon=True).start()

    def _reap(self, name: str, child: subprocess.Popen) -> None:
        code = child.wait()
        with self._lock:
            folder = self.runs_dir / name
            if not (folder / RUN_FILE).is_file():
                return
            record = self._read(name)
            if record.get("pid") == child.pid:
                record.update(exit_code=code, ended_at=time.time())
                self._write(folder, record)

    def _state(self, record: dict, folder: Path, ended: tuple[str, int] | None | bool = False) -> str:
        """`ended`: `_ended(folder)` where already read (False: not yet)."""
        state = record.get("state")
        if state in ("queued", "cancelled"):
            return state
        if state == "stopped":
            return "stopped"
        pid = record.get("pid")
        if record.get("exit_code") is None and pid and _is_run_process(pid, folder):
            return "stopping" if record.get("stop_requested") else "running"
        ended = _ended(folder) if ended is False else ended
        if ended:
            return ended[0]
        if record.get("stop_requested"):  # stopped before training began (Ctrl-C while it starts)
            return "stopped"
        code = record.get("exit_code")
        if (code is not None and code > 0) or _error_line(folder):
            return "failed"
        return "interrupted"  # killed by a signal, or gone with the machine: its checkpoints stand

    def _error(self, folder: Path, record: dict) -> str:
        line = _error_line(folder)
        if line:
            return line
        tail = [t for t in log_tail(folder / LOG_FILE, 5) if t.strip()]
        return f"the process ended with code {record.get('exit_code')}" + (f": {tail[-1]}" if tail else "")

    def _new_folder(self, name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "run"
        folder, n = self.runs_dir / stem, 2
        while folder.exists():
            folder, n = self.runs_dir / f"{stem}-{n}", n + 1
        folder.mkdir(parents=True)
        return folder

    def _read(self, name: str) -> dict:
        return _read_json(self.runs_dir / name / RUN_FILE)

    @staticmethod
    def _write(folder: Path, record: dict) -> None:
        atomic_write_text(folder / RUN_FILE, json.dumps(record, indent=1))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _is_run_process(pid: int, folder: Path) -> bool:
    """Whether process `pid` lives and is this run's (a pid is reused once its process is gone)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            words = cmdline.read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
        return not zombie and str(folder).encode() in words
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def log_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log, a progress bar's redraws (carriage returns) as lines."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    out = [line.rstrip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return out[-lines:]


def _ended(folder: Path) -> tuple[str, int] | None:
    """How the newest launch ended, from the trainer's last words: (finished|stopped, step)."""
    for line in reversed(log_tail(folder / LOG_FILE, 40)):
        if line.startswith("--- resumed"):
            return None
        match = ENDED.match(line)
        if match:
            return match[1], int(match[2])
    return None


def _error_line(folder: Path) -> str:
    for line in reversed(log_tail(folder / LOG_FILE, 40)):
        if line.startswith("--- resumed"):
            return ""
        match = ERROR.match(line)
        if match:
            return match[1]
    return ""


def read_metrics(folder: Path) -> list[dict]:
    """metrics.csv's rows, numbers as floats (an empty cell is None); a half-written last line
    (the trainer appends while the page reads) is left out."""
    try:
        with open(folder / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    out = []
    for row in rows:
        try:
            parsed = {k: (float(v) if v not in ("", None) else None) for k, v in row.items() if k is not None}
        except ValueError:
            continue
        if parsed.get("step") is None:
            continue
        parsed["step"] = int(parsed["step"])
        out.append(parsed)
    return out
