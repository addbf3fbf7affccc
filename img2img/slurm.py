"""Slurm: this process's place in a job step, and the few commands img2img runs (sbatch, scontrol,
scancel). Nothing here starts unless Slurm's environment or an explicit call asks for it.

`srun` starts one task per GPU, and sets in each SLURM_PROCID (the rank), SLURM_LOCALID (the rank
on its node) and SLURM_STEP_NUM_TASKS (the step's size). A batch script's own shell has
SLURM_PROCID and SLURM_NTASKS too, yet is one process, so only a step's variables count."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import Img2ImgError

# Slurm's signals that mean "the job is about to be stopped": sbatch's --signal.
PREEMPT_SIGNALS = ("USR1", "TERM")
PORT_BASE, PORT_SPAN = 15000, 20000  # a job's rendezvous port, from its id, when MASTER_PORT is not set


@dataclass(frozen=True)
class SlurmTask:
    """One task of an srun step: its rank, local rank, the step's size, and where rank 0 listens."""

    job_id: str
    rank: int
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "SlurmTask | None":
        """The task started by srun, or None outside a step (a batch script's shell, a login node)."""
        if "SLURM_STEP_NUM_TASKS" not in env or "SLURM_PROCID" not in env:
            return None
        job_id = env.get("SLURM_JOB_ID", "0")
        nodes = expand_hostlist(env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "localhost"))
        try:
            return cls(job_id, int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", "0")),
                       int(env["SLURM_STEP_NUM_TASKS"]), env.get("MASTER_ADDR") or nodes[0],
                       int(env.get("MASTER_PORT") or PORT_BASE + int(job_id) % PORT_SPAN))
        except ValueError as e:
            raise Img2ImgError(f"Slurm's environment is not as srun sets it: {e}") from None


def job_id(env: Mapping[str, str] = os.environ) -> str | None:
    """The Slurm job this process runs in, if any."""
    return env.get("SLURM_JOB_ID")


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed host list in full: "gpu[01-03,07],login" -> gpu01, gpu02, gpu03, gpu07,
    login (as `scontrol show hostnames` prints it; numbers keep their zero padding)."""
    hosts = []
    for prefix, ranges, suffix in re.findall(r"([^,\[]+)(?:\[([^\]]+)\])?([^,\[]*)", text):
        if not ranges:
            hosts.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            for n in range(int(low), int(high or low) + 1):
                hosts.append(f"{prefix}{n:0{len(low)}d}{suffix}")
    return hosts


def run_command(argv: list[str], what: str) -> str:
    """A Slurm command's output; a failure is one line naming the command and Slurm's words."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise Img2ImgError(f"{what}: `{argv[0]}` is not installed here (is this a Slurm login node?)") from None
    except subprocess.TimeoutExpired:
        raise Img2ImgError(f"{what}: `{argv[0]}` did not answer within 60 s (is slurmctld up?)") from None
    if done.returncode != 0:
        words = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[-1]
        raise Img2ImgError(f"{what}: {shlex.join(argv)}: {words}")
    return done.stdout


def requeue(job: str) -> None:
    """Put job `job` back in the queue (it ends now and starts again from its script)."""
    run_command(["scontrol", "requeue", job], f"requeue job {job}")


def cancel(job: str, signal: str | None = None) -> None:
    """`scancel`: end the job, or with `signal` only send it to the job's steps (the trainer then
    saves and ends)."""
    run_command(["scancel", *([f"--signal={signal}"] if signal else []), job], f"cancel job {job}")


def submit(script: Path) -> str:
    """`sbatch` the script; returns the job id."""
    out = run_command(["sbatch", "--parsable", str(script)], f"submit {script}")
    return out.strip().split(";")[0]


@dataclass(frozen=True)
class JobState:
    """A job as Slurm's controller sees it now: PENDING, RUNNING, COMPLETING, ... The reason says
    why a job waits (Priority, Resources, BeginTime); `restarts` counts its requeues."""

    state: str
    reason: str = ""
    restarts: int = 0

    def words(self) -> str:
        state = self.state.lower()
        if state == "pending" and self.restarts:
            state = f"requeued {self.restarts}×, pending"
        return f"{state} ({self.reason})" if self.reason and self.reason != "None" else state


def job_states() -> dict[str, JobState]:
    """Every job the controller still knows of (ended ones leave after its MinJobAge), by id."""
    out = run_command(["scontrol", "--oneliner", "show", "job"], "read Slurm's jobs")
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = JobState(fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""),
                                             int(fields.get("Restarts", "0") or 0))
    return jobs


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how long a job runs: sbatch's options, as `img2img submit` and `app.py --runner
    slurm` take them. `gpus` per node; one task per GPU unless `tasks_per_node` says (one without
    GPUs); `extra`: more sbatch options, verbatim."""

    partition: str | None = None
    nodes: int = 1
    gpus: int = 0
    tasks: int | None = None
    cpus_per_task: int | None = None
    time: str | None = None
    account: str | None = None
    signal: str = "USR1"
    signal_seconds: int = 300
    extra: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tasks_per_node(self) -> int:
        return self.tasks or max(1, self.gpus)

    def flags(self) -> list[str]:
        """These options as `img2img submit` takes them, the defaults left out (the signal is the
        run's own --preempt-signal)."""
        default, words = SlurmOptions(), []
        for name in ("partition", "nodes", "gpus", "tasks", "cpus_per_task", "time", "account", "signal_seconds"):
            if (value := getattr(self, name)) != getattr(default, name):
                words += ["--tasks-per-node" if name == "tasks" else "--" + name.replace("_", "-"), str(value)]
        return words + [f"--sbatch={option}" for option in self.extra]

    def directives(self, name: str, log: Path) -> list[str]:
        lines = [f"--job-name={name}", f"--output={log}", "--open-mode=append", "--requeue",
                 f"--signal={self.signal}@{self.signal_seconds}", f"--nodes={self.nodes}",
                 f"--ntasks-per-node={self.tasks_per_node}"]
        if self.gpus:
            lines.append(f"--gpus-per-node={self.gpus}")
        lines += [f"--{flag}={value}" for flag, value in (("partition", self.partition), ("time", self.time),
                                                            ("account", self.account),
                                                            ("cpus-per-task", self.cpus_per_task)) if value]
        return lines + list(self.extra)


def job_script(command: list[str], options: SlurmOptions, name: str, folder: Path, log: str) -> str:
    """An sbatch script that runs `command` as an srun step of one task per GPU (one task
    without GPUs), logging to FOLDER/LOG. It is meant to be read, and resubmitted by hand."""
    directives = "\n".join(f"#SBATCH {shlex.quote(d)}" for d in options.directives(name, folder / log))
    return f"""#!/bin/bash
# Written by img2img for the run in {folder}.
# Submit it again with: sbatch {shlex.quote(str(folder / 'job.sbatch'))}
# On the --signal below (Slurm sends it before a time limit or a preemption), every task finishes
# its step, rank 0 saves a checkpoint and requeues this job, which resumes from it (--resume auto).
{directives}
echo "--- job $SLURM_JOB_ID (restart ${{SLURM_RESTART_COUNT:-0}}) on $SLURM_JOB_NODELIST at $(date -Is) ---"
exec srun --kill-on-bad-exit=1 {shlex.join(command)}
"""
