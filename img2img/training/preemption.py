"""Preemption under Slurm. The signal Slurm sends before it stops a job (sbatch's `--signal`:
SIGUSR1, or SIGTERM, as `--preempt-signal` says) stops a run as Ctrl-C does: every rank finishes
its step and rank 0 writes a full checkpoint. Then the job requeues itself (`--on-preempt
requeue`, `scontrol requeue`) or ends for the scheduler to requeue it (`exit`); the requeued job
resumes from that checkpoint (`--resume auto`), so that a run stopped and requeued any number of
times ends as an uninterrupted one does, bit for bit.

A stop asked through the run folder (the app's Stop, which also signals the job) is a stop, not a
preemption: the job then ends."""
from __future__ import annotations

import signal

from .. import slurm
from ..errors import Img2ImgError


def preempt_signal(name: str) -> signal.Signals:
    return signal.Signals[f"SIG{name}"]


def was_preempted(trainer) -> bool:
    """Whether a Trainer's run stopped on the preemption signal, inside a Slurm job, unasked by its owner."""
    stop = trainer.stop_request
    return (trainer.stopped and stop is not None and stop.signal == preempt_signal(trainer.cfg.train.preempt_signal)
            and slurm.job_id() is not None and not trainer.folder.stop_requested())


def requeue_if_preempted(trainer) -> bool:
    """Once `fit` has returned (every rank finished, the checkpoint on disk): whether the run was
    preempted, and if so, rank 0 requeues the job (or leaves it to the scheduler) and says so in
    the log and the run's status."""
    if not was_preempted(trainer):
        return False
    if not trainer.ranks.is_main:
        return True
    job, step = slurm.job_id(), trainer.progress.step
    if trainer.cfg.train.on_preempt == "exit":
        trainer.info(f"preempted at step {step}: ending for Slurm to requeue job {job} (--on-preempt exit)")
        trainer.folder.update_status(error=f"preempted at step {step}; left for Slurm to requeue")
        return True
    try:
        trainer.folder.update_status(error=f"preempted at step {step}; requeued job {job}")
        trainer.info(f"preempted at step {step}: requeuing job {job}; it resumes from this checkpoint")
        slurm.requeue(job)
    except Img2ImgError as e:  # e.g. a job cancelled meanwhile: the checkpoint stands
        trainer.folder.update_status(error=f"preempted at step {step}; not requeued: {e}")
        trainer.warning(f"warning: not requeued: {e}. Resume with: sbatch {trainer.out / 'job.sbatch'} "
                        f"(or img2img train --resume auto --out {trainer.out})")
    return True
