"""Training runs for the app: each in its own process, started as `img2img train --config` from
the config the page asked for, in a folder under the server's runs folder, and watched through
that folder alone.

A run's folder holds `run.json` (the app's queue record: asked for, launched, stop asked),
`request.json` (the config the run starts from), `train.log` (the process's output, shown, never
parsed) and what the trainer writes (the contract in training/run_folder.py: status.json,
metrics.csv, config.json, samples/, checkpoints/). Nothing else is kept in memory that a
restarted server would need: the processes run in sessions of their own, so they outlive the
page and the server, and a new server finds them again from their folders. A run whose process
is gone without saying how it ended is `interrupted`, and resumes from its newest checkpoint."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..errors import Img2ImgError
from ..files import atomic_write_text
from ..log import logger
from ..methods import METHODS, equivalent_command
from ..training.run_folder import REQUEST_FILE, RunFolder, RunStatus, process_alive
from .run_limits import TrainingLimits, runs_past_disk_budget

RUN_FILE = "run.json"
LOG_FILE = "train.log"
TRAIN_COMMAND = (sys.executable, "-m", "img2img", "train")
DISK_CHECK_S = 5.0  # how often the runs folder's size is looked at while a run trains


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
    total_s: float | None = None  # the whole run at the speed measured so far
    command: str = ""
    error: str = ""
    queue_position: int | None = None
    checkpoint: Path | None = None
    scheduler: str = ""  # where a cluster's scheduler has it: "Slurm job 12: pending (Priority)"

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
                parts.append(f"about {_duration(self.eta_s)} left ({_duration(self.total_s)} in all on this machine)")
        if self.error:
            parts.append(f"{'why' if self.state in ('stopping', 'stopped') else 'error'}: {self.error}")
        if self.scheduler:
            parts.append(self.scheduler)
        return ", ".join(parts)


@dataclass
class RunWatch:
    """What the page draws for a run: its metrics.csv rows, newest sample grid and log's end."""

    view: RunView
    losses: list[dict] = field(default_factory=list)  # {"step", "loss", "value"}
    evaluations: list[dict] = field(default_factory=list)  # {"step", "metric", "value"}
    sample: Path | None = None
    sample_columns: tuple[str, ...] = ()  # what the grid's columns show
    log_tail: str = ""


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class RunViews:
    """The runs under `runs_dir`, as the page shows them: read from each folder's run.json (the
    app's queue record) and the trainer's contract (training/run_folder.py), never its log."""

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return sorted((p.parent.name for p in self.runs_dir.glob(f"*/{RUN_FILE}")),
                      key=lambda n: -(self.runs_dir / n / RUN_FILE).stat().st_mtime)

    def runs(self) -> list[RunView]:
        return [self.view(name) for name in self.names()]

    def view(self, name: str, status: RunStatus | None = None) -> RunView:
        """The run's state and progress, from its run.json and the trainer's status.json."""
        folder = self.folder(name)
        record = self._read(name)
        status = RunFolder(folder).status() if status is None else status
        view = RunView(name=name, state=self._state(record, folder, status), command=record.get("command", ""))
        if view.state == "queued":
            queued = sorted((r.get("queued_at", 0), n) for n in self.names()
                            if (r := self._read(n)).get("state") == "queued")
            view.queue_position = 1 + [n for _, n in queued].index(name)
        if view.state == "failed":
            view.error = record.get("error") or (status.error if status and status.state == "failed" else
                                                 f"the process ended with code {record.get('exit_code')} before "
                                                 "training began")
        elif view.state == "interrupted" and (record.get("exit_code") or 0) < 0:
            view.error = f"killed by {signal.Signals(-record['exit_code']).name}"
        elif view.state in ("stopping", "stopped") and record.get("stop_reason"):
            view.error = record["stop_reason"]
        if status is not None:
            view.step, view.epoch, view.images_per_s = status.step, status.epoch, status.images_per_s
            view.total_steps, view.total_epochs = status.total_steps, status.total_epochs
            if view.total_steps and status.steps_per_epoch:  # --max-steps may end it before the schedule
                view.total_epochs = min(view.total_epochs, -(-view.total_steps // status.steps_per_epoch))
            speed = status.speed or view.images_per_s
            if view.total_steps and speed:
                view.eta_s = (view.total_steps - view.step) / (speed / status.batch_size)
                view.total_s = view.total_steps / (speed / status.batch_size)
        view.checkpoint = RunFolder(folder).checkpoint()
        return view

    def watch(self, name: str, log_lines: int = 15) -> RunWatch:
        run = RunFolder(self.folder(name))
        watch = RunWatch(self.view(name))
        for row in run.metrics():
            numbers = {k: v for k, v in row.values.items() if isinstance(v, float)}
            if row.kind == "train":
                watch.losses += [{"step": row.step, "loss": k, "value": v} for k, v in numbers.items()
                                 if k not in ("lr", "images_per_s")]
            else:  # the figures, not the seconds they took
                watch.evaluations += [{"step": row.step, "metric": k, "value": v} for k, v in numbers.items()
                                      if not k.startswith("seconds")]
        watch.sample = run.newest_sample()
        if watch.sample is not None:
            try:
                watch.sample_columns = METHODS[run.config().method].training.sample_columns
            except Img2ImgError:  # no config.json (yet)
                pass
        watch.log_tail = "\n".join(log_tail(run.path / LOG_FILE, log_lines))
        return watch

    def signature(self, name: str) -> tuple:
        """What a watcher has seen of a run, from file sizes and times alone: when it is unchanged,
        nothing needs to be read or drawn again."""
        folder = self.folder(name)
        stats = []
        for path in (folder / RUN_FILE, folder / "status.json", folder / "metrics.csv", folder / LOG_FILE,
                     folder / "samples"):
            try:
                st = path.stat()
                stats.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stats.append(None)
        return name, self._state(self._read(name), folder, RunFolder(folder).status()), *stats

    def folder(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith(".") or \
                not (self.runs_dir / name / RUN_FILE).is_file():
            raise Img2ImgError(f"{name or '(none)'}: no such run")
        return self.runs_dir / name

    def checkpoint(self, name: str) -> Path | None:
        """The run's best.pt (lowest FID) where it has one, else its latest.pt."""
        return RunFolder(self.runs_dir / name).checkpoint()


    def _state(self, record: dict, folder: Path, status: RunStatus | None) -> str:
        """The app's queue (run.json) for a run that waits; the trainer's status.json, and whether
        its process lives, for one that was launched."""
        state = record.get("state")
        if state in ("queued", "cancelled", "stopped", "failed"):
            return state
        launched_alive = record.get("exit_code") is None and bool(record.get("pid")) and \
            process_alive(record["pid"], folder)
        newest = status is not None and status.updated >= record.get("started_at", 0) - 1
        status_alive = newest and status.claims_to_run and RunFolder(folder).process_alive(status) is not False
        if launched_alive or status_alive:
            return "stopping" if record.get("stop_requested") else "running"
        if newest and not status.claims_to_run:
            return status.state
        if record.get("stop_requested"):  # stopped before the trainer said anything
            return "stopped"
        if (record.get("exit_code") or 0) > 0 and not newest:
            return "failed"
        return "interrupted"  # killed by a signal, or gone with the machine: its checkpoints stand

    def _read(self, name: str) -> dict:
        return _read_json(self.runs_dir / name / RUN_FILE)


class RunQueue(RunViews):
    """The unattended part of the runs under `runs_dir`: queued runs start, at most `max_runs` at
    once and oldest first, as others end; running ones stop when the runs folder reaches its
    disk budget. `train_command`: the argv that starts `img2img train` (this Python's by
    default)."""

    def __init__(self, runs_dir: Path | str, max_runs: int = 1, train_command: tuple[str, ...] = TRAIN_COMMAND,
                 run_limits: TrainingLimits = TrainingLimits()) -> None:
        super().__init__(runs_dir)
        self.run_limits = run_limits
        self.max_runs = max_runs
        self.train_command = tuple(train_command)
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._disk_checked = -DISK_CHECK_S

    def tick(self) -> None:
        """Start queued runs, oldest first, while fewer than `max_runs` train."""
        with self._lock:
            records = {n: self._read(n) for n in self.names()}
            # From run.json and /proc alone: this runs every second, and reads no logs.
            running = [n for n, r in records.items() if r.get("state") == "launched" and r.get("exit_code") is None
                       and bool(r.get("pid")) and process_alive(r["pid"], self.runs_dir / n)]
            active = len(running)
            self._watch_disk([n for n in running if not records[n].get("stop_requested")])
            for queued_at, name in sorted((r.get("queued_at", 0), n) for n, r in records.items()
                                          if r.get("state") == "queued"):
                if active >= self.max_runs:
                    break
                self._launch(name, records[name])
                active += 1

    def _watch_disk(self, running: list[str]) -> None:
        """Stop the running runs, each with a checkpoint, once the runs folder reaches its budget;
        looked at every DISK_CHECK_S while a run trains, never when none does."""
        now = time.monotonic()
        if running and now - self._disk_checked >= DISK_CHECK_S:
            self._disk_checked = now
            for name, reason in runs_past_disk_budget(self.runs_dir, running, self.run_limits):
                logger.warning(f"warning: {name}: stopped: {reason}")
                self._signal_stop(name, self._read(name), reason)

    def _signal_stop(self, name: str, record: dict, reason: str | None = None) -> None:
        """Ask a running run to stop (its run folder's request, and SIGINT to its process group);
        `reason`: shown with the run."""
        record.update(stop_requested=True, stop_reason=reason)
        self._write(self.runs_dir / name, record)
        RunFolder(self.runs_dir / name).request_stop()
        for pid in live_pids(self.runs_dir / name, record):
            try:
                os.killpg(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

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
        argv = ["--config", str(folder / REQUEST_FILE)]
        RunFolder(folder).clear_stop()
        if record.get("launches"):
            argv += ["--resume", "auto"]
        with open(folder / LOG_FILE, "ab") as log:
            if record.get("launches"):
                log.write(f"\n--- resumed {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            # A session of its own: the run outlives the page and the server, and a Ctrl-C meant
            # for the server does not reach it. Its output goes to the file, not to a pipe.
            try:
                child = subprocess.Popen([*self.train_command, *argv, "--out", str(folder)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except (OSError, ValueError) as e:  # it cannot start: failed, so that the queue moves on
                record.update(state="failed", error=f"the run could not start: {e}", launches=record.get("launches", 0))
                self._write(folder, record)
                return
        try:  # its memory cap: from its first allocations on, past which they fail ("out of memory")
            cap = self.run_limits.max_run_process_mb * 10**6
            resource.prlimit(child.pid, resource.RLIMIT_DATA, (cap, cap))
        except ProcessLookupError:  # already gone: the reaper says how it ended
            pass
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


    @staticmethod
    def _write(folder: Path, record: dict) -> None:
        atomic_write_text(folder / RUN_FILE, json.dumps(record, indent=1))


class RunManager(RunQueue):
    """The runs under `runs_dir`, and what their owners (or `admins`) do with them: submit,
    resume, stop, delete."""

    def __init__(self, runs_dir: Path | str, max_runs: int = 1, train_command: tuple[str, ...] = TRAIN_COMMAND,
                 run_limits: TrainingLimits = TrainingLimits(), admins: tuple[str, ...] = ()) -> None:
        super().__init__(runs_dir, max_runs, train_command, run_limits)
        self.admins = set(admins)

    def submit(self, cfg: RunConfig, name: str, owner: str | None = None) -> str:
        """Queue a new run of `cfg` in RUNS/NAME (NAME made unique) for login `owner` (None:
        a server without logins); returns its name. The process starts from the config itself;
        the equivalent command is kept to show, and to repeat the run in a terminal. The queue
        is bounded, in all and per login."""
        with self._lock:
            check_queue([r.get("owner") for n in self.names() if (r := self._read(n)).get("state") == "queued"],
                        owner, self.run_limits)
            folder = new_folder(self.runs_dir, name)
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out=str(folder)))
            atomic_write_text(folder / REQUEST_FILE, json.dumps(cfg.to_dict(), indent=1))
            self._write(folder, {"name": folder.name, "owner": owner, "command": self.command_for(cfg),
                                 "created": time.time(), "queued_at": time.time(), "state": "queued", "launches": 0})
            self.tick()
            return folder.name


    def command_for(self, cfg: RunConfig) -> str:
        """The command that repeats a run of `cfg` in a terminal."""
        return command_text(cfg)

    def resume(self, name: str, user: str | None = None) -> None:
        """Queue a stopped, failed or interrupted run again, continuing from its newest checkpoint
        as `img2img train --resume auto` does (bit for bit)."""
        self.check_owner(name, user, "resume")
        with self._lock:
            view = self.view(name)
            if not view.can_resume:
                raise Img2ImgError(f"{name}: is {view.state}; only a stopped, failed or interrupted run resumes")
            record = self._read(name)
            record.update(state="queued", queued_at=time.time(), stop_requested=False, exit_code=None, pid=None,
                          error=None, stop_reason=None)
            self._write(self.runs_dir / name, record)
            self.tick()

    def stop(self, name: str, user: str | None = None) -> None:
        """What Ctrl-C sends (SIGINT, to the run's process group): the trainer finishes its step
        and writes a checkpoint. A queued run leaves the queue."""
        self.check_owner(name, user, "stop")
        with self._lock:
            view = self.view(name)
            record = self._read(name)
            if view.state == "queued":
                record.update(state="stopped" if record.get("launches") else "cancelled")
                self._write(self.runs_dir / name, record)
                return
            if view.state not in ("running", "stopping"):
                raise Img2ImgError(f"{name}: is {view.state}, not running")
            self._signal_stop(name, record)

    def delete(self, name: str, user: str | None = None) -> None:
        """Remove a run's folder; a running run must be stopped first."""
        self.check_owner(name, user, "delete")
        with self._lock:
            view = self.view(name)
            if view.state in ("running", "stopping", "pending"):
                raise Img2ImgError(f"{name}: is {view.state}; stop it before deleting it")
            shutil.rmtree(self.runs_dir / name)


    def check_owner(self, name: str, user: str | None, verb: str) -> None:
        """Only a run's owner, or an admin, may change or use it (anyone may watch)."""
        self.folder(name)
        check_owner(name, self._read(name).get("owner"), user, self.admins, verb)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}

def new_folder(runs_dir: Path, name: str) -> Path:
    """A new run folder named after `name`, made unique."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "run"
    folder, n = runs_dir / stem, 2
    while folder.exists():
        folder, n = runs_dir / f"{stem}-{n}", n + 1
    folder.mkdir(parents=True)
    return folder


def command_text(cfg: RunConfig) -> str:
    """The `img2img train` command that repeats a run of `cfg` in a terminal."""
    return f"{equivalent_command(cfg)} --out {shlex.quote(cfg.train.out)}"


def live_pids(folder: Path, record: dict) -> set[int]:
    """The run's process: run.json's, and the one its own status names (another server's reaper
    may have written an older launch's pid back into run.json after this one launched)."""
    run, pids = RunFolder(folder), {record.get("pid")}
    status = run.status()
    if status is not None and status.claims_to_run and run.process_alive(status):
        pids.add(status.pid)
    return pids - {None}


def same_settings(views: list[RunView], name: str) -> list[str]:
    """The other runs, queued or training, that train exactly what run `name` does."""
    def settings(view: RunView) -> str:
        return view.command.rsplit(" --out ", 1)[0]
    mine = next(v for v in views if v.name == name)
    return [v.name for v in views if v.name != name and v.state in ("queued", "running", "stopping")
            and settings(v) == settings(mine)]


def check_queue(queued_owners: list[str | None], owner: str | None, limits: TrainingLimits) -> None:
    """Refuse a run past the queue's bounds: in all, and per login."""
    if len(queued_owners) >= limits.max_queued_runs:
        raise Img2ImgError(f"{len(queued_owners)} runs are waiting already, the most this server queues "
                           "(--max-queued-runs); start this one when one has begun")
    if owner is not None and queued_owners.count(owner) >= limits.max_queued_runs_per_user:
        raise Img2ImgError(f"{owner}: {queued_owners.count(owner)} of your runs are waiting already, the most this "
                           "server queues per login (--max-queued-runs-per-user)")


def check_owner(name: str, owner: str | None, user: str | None, admins: set[str], verb: str) -> None:
    """A server without logins has one user (None), who owns every run."""
    if user is not None and owner is not None and user != owner and user not in admins:
        raise Img2ImgError(f"{name}: is {owner}'s run; only its owner or an admin (--admin) may {verb} it")


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
