"""The Train tab's runs as Slurm jobs (`app.py --runner slurm`), for an app on a cluster's login
node. A run is submitted at once (the queue is Slurm's), as the job script `img2img submit`
writes (training/slurm_job.py); Stop asks the run folder for a stop and sends the job its
preemption signal, so that it saves and ends instead of requeuing; Resume submits the script
again. What a run did comes from its folder on the shared file system, as for a local run, and
where it waits from Slurm's controller: its job id, state (pending, running, requeued) and the
reason it is pending."""
from __future__ import annotations

import dataclasses
import json
import shlex
import threading
import time
from pathlib import Path

from .. import slurm
from ..config import RunConfig
from ..errors import Img2ImgError
from ..log import logger
from ..methods import run_config_from_dict
from ..training.run_folder import REQUEST_FILE, RunFolder, RunStatus
from ..training.slurm_job import write_job
from .run_limits import TrainingLimits
from .runs import LOG_FILE, RunManager, RunView, command_text

JOBS_FRESH_S = 2.0  # how long one answer of the controller serves every run's view
# Slurm's states of a job that has not ended (squeue's; the rest are ends: COMPLETED, FAILED, ...).
WAITING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED")
ACTIVE = ("RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING")


class SlurmRunManager(RunManager):
    """RunManager whose runs are Slurm jobs submitted with `options` (partition, GPUs, time,
    account; slurm.SlurmOptions)."""

    def __init__(self, runs_dir: Path | str, options: slurm.SlurmOptions,
                 run_limits: TrainingLimits = TrainingLimits(), admins: tuple[str, ...] = ()) -> None:
        super().__init__(runs_dir, max_runs=1, run_limits=run_limits, admins=admins)
        self.options = options
        self._jobs: dict[str, slurm.JobState] = {}
        self._jobs_read = float("-inf")
        self._jobs_lock = threading.Lock()

    def command_for(self, cfg: RunConfig) -> str:
        """`img2img submit` with this runner's options: the same job, from a terminal."""
        return command_text(cfg).replace("img2img train", shlex.join(["img2img", "submit", *self.options.flags()]), 1)

    def jobs(self) -> dict[str, slurm.JobState]:
        """Slurm's jobs, read at most every JOBS_FRESH_S; a controller that does not answer is
        logged, and its last answer stands."""
        with self._jobs_lock:
            if time.monotonic() - self._jobs_read >= JOBS_FRESH_S:
                try:
                    self._jobs = slurm.job_states()
                except Img2ImgError as e:
                    logger.warning(f"warning: {e}")
                self._jobs_read = time.monotonic()
            return self._jobs

    def tick(self) -> None:
        """Submit whatever waits in the app's own queue: with Slurm, that is every new run."""
        with self._lock:
            for name in self.names():
                record = self._read(name)
                if record.get("state") == "queued":
                    self._launch(name, record)

    def _launch(self, name: str, record: dict) -> None:
        folder = self.runs_dir / name
        RunFolder(folder).clear_stop()
        cfg = self._request(name)
        try:
            # The job's signal is the one the run takes for a preemption (its --preempt-signal).
            options = dataclasses.replace(self.options, signal=cfg.train.preempt_signal)
            job = slurm.submit(write_job(cfg, options, log=LOG_FILE))
        except Img2ImgError as e:  # refused by Slurm (partition, account, time): failed, with its words
            record.update(state="failed", error=str(e), launches=record.get("launches", 0))
            self._write(folder, record)
            return
        self._jobs_read = float("-inf")
        record.update(state="launched", job=job, pid=None, started_at=time.time(),
                      launches=record.get("launches", 0) + 1, exit_code=None, stop_requested=False)
        self._write(folder, record)

    def _state(self, record: dict, folder: Path, status: RunStatus | None) -> str:
        if record.get("state") != "launched" or not record.get("job"):
            return super()._state(record, folder, status)
        job = self.jobs().get(record["job"])
        newest = status is not None and status.updated >= record.get("started_at", 0) - 1
        if job is not None and job.state in WAITING:
            return "pending"
        # A job that completes has a trainer that already said how it ended; a running one may be
        # a requeued job whose new trainer has not spoken yet.
        if job is not None and job.state in ACTIVE and not (job.state == "COMPLETING" and newest
                                                          and not status.claims_to_run):
            return "stopping" if record.get("stop_requested") else "running"
        if newest and not status.claims_to_run:
            return status.state
        if record.get("stop_requested"):
            return "stopped" if newest else "cancelled"
        if job is not None and job.state in ("FAILED", "OUT_OF_MEMORY", "NODE_FAIL") and not newest:
            return "failed"
        return "interrupted"  # ended by Slurm without a word from the trainer: its checkpoints stand

    def view(self, name: str, status: RunStatus | None = None) -> RunView:
        view = super().view(name, status)
        record = self._read(name)
        if record.get("job"):
            job = self.jobs().get(record["job"])
            view.scheduler = f"Slurm job {record['job']}" + (f": {job.words()}" if job else "")
        if view.state == "failed" and not view.error and record.get("job"):
            view.error = f"Slurm job {record['job']} ended before training began; see its slurm.log"
        return view

    def signature(self, name: str) -> tuple:
        """The folder's files, and where Slurm has the job: a page redraws when its reason changes."""
        job = self._read(name).get("job")
        return *super().signature(name), job and self.jobs().get(job)

    def _signal_stop(self, name: str, record: dict, reason: str | None = None) -> None:
        """The run folder's stop request (a stop, not a preemption), then the job's own signal,
        so that it stops at its next step rather than at its next look at the folder."""
        record.update(stop_requested=True, stop_reason=reason)
        self._write(self.runs_dir / name, record)
        RunFolder(self.runs_dir / name).request_stop()
        if record.get("job"):
            slurm.cancel(record["job"], signal=self._request(name).train.preempt_signal)

    def _request(self, name: str) -> RunConfig:
        return run_config_from_dict(json.loads((self.runs_dir / name / REQUEST_FILE).read_text()))

    def stop(self, name: str, user: str | None = None) -> None:
        """A pending job is cancelled; a running one saves and ends."""
        self.check_owner(name, user, "stop")
        with self._lock:
            if self.view(name).state == "pending":
                record = self._read(name)
                slurm.cancel(record["job"])
                record.update(state="stopped" if RunFolder(self.runs_dir / name).checkpoint() else "cancelled",
                              stop_requested=True)
                self._write(self.runs_dir / name, record)
                self._jobs_read = float("-inf")
                return
        super().stop(name, user)
