"""The one training loop. It knows methods only through `TrainingMethod`."""
from __future__ import annotations

import dataclasses
import functools
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..config import RunConfig, SpeedConfig
from ..data.loader import EpochBatches, EpochSampler, collate_skipping_errors
from ..device import seed_everything, use_deterministic_algorithms
from ..errors import Img2ImgError
from ..log import logger
from ..methods import build_method
from ..methods.base import memory_format
from . import distributed
from .checkpoint_files import checkpoint_name
from .checkpointing import CheckpointWriter, restore_run_state, run_state
from .cuda_graph import CapturedStep, check_capturable
from .evaluation import Evaluation
from .footprint import Footprint
from .guard import guarded_step
from .preemption import preempt_signal
from .progress import LossWindow, Progress
from .run_config import prepare_run
from .run_folder import MetricsLog, RunFolder
from .samples import fixed_sample_batch, save_sample_grid
from .schedule import Schedule, lr_scheduler
from .signals import StopRequest, ignore_stop_signals
from .starting_model import StartingModel, find_starting_model, load_starting_weights

# --snapshot-every left unset: about this many generator snapshots over a run.
SNAPSHOTS_PER_RUN = 20


class Trainer:
    """Trains `cfg.method` on `train_set` (items {"A", "B"} tensors in [-1, 1], or {"error"}),
    by default the config's folders. `val_set` gives the sample grids and FID; without it,
    samples come from `train_set`.

    Building one joins the torchrun process group when there is one and seeds the process's
    RNGs (weight init and dropout draw from them), so that a run is reproducible.
    """

    def __init__(self, cfg: RunConfig, train_set: Dataset | None = None, val_set: Dataset | None = None,
                 resuming: bool = False, starting: StartingModel | None = None) -> None:
        """`resuming`: a checkpoint will be loaded, not `train.init_from`'s model (`starting`, if loaded)."""
        cfg, train_set, val_set = prepare_run(cfg, train_set, val_set)
        self.cfg = cfg
        self.out = Path(cfg.train.out)
        self.folder = RunFolder(self.out)
        if cfg.train.deterministic:
            use_deterministic_algorithms()  # before the first CUDA call
        self.ranks, self.device = distributed.setup(cfg.train.device, cfg.train.sync_bn)
        # Ranks differ in dropout and pool draws; DDP gives them rank 0's initial weights.
        seed_everything(cfg.train.seed + self.ranks.rank)
        self.speed = resolve_speed(cfg, self.device)
        self.to_device = functools.partial(batch_to_device, device=self.device, speed=self.speed)
        self.train_set = train_set
        self.val_set = val_set
        self.method = build_method(cfg, self.device, self.speed)
        self.method.preview_channels = cfg.data.preview_channels
        if cfg.train.init_from and not resuming:
            self.info(load_starting_weights(self.method.networks, cfg, starting or find_starting_model(cfg.train.init_from)))
        if self.ranks.enabled:
            distributed.distribute(self.method, sync_bn=cfg.train.sync_bn)
        check_capturable(self.speed, self.device, self.method)
        self.schedulers = {name: lr_scheduler(opt, cfg.train) for name, opt in self.method.optimizers.items()}
        self.progress = Progress()
        self.sampler = EpochSampler(len(self.train_set), shuffle=not cfg.data.serial_batches, seed=cfg.train.seed,
                                    rank=self.ranks.rank, num_replicas=self.ranks.world_size)
        self.batches = EpochBatches(self.sampler, cfg.data.batch_size, self.total_epochs)
        samples_from = self.val_set if self.val_set is not None else self.train_set
        self._sample_batch = (fixed_sample_batch(samples_from, cfg.train.num_samples, self.to_device)
                              if self.ranks.is_main else None)
        self.evaluation = Evaluation(cfg, self.ranks, self.method, val_set, self.schedule, self.schedulers)
        every = cfg.train.snapshot_every
        self.snapshot_every = max(1, round(self.total_epochs / SNAPSHOTS_PER_RUN)) if every is None else every
        self.footprint = Footprint.of(self.method, cfg.train, self.schedule, self.snapshot_every)
        self.checkpoints = CheckpointWriter(cfg, self.ranks, self.method, self.footprint)
        self.metrics: MetricsLog | None = None
        self.window = LossWindow(self.device)
        self.stop_request: StopRequest | None = None
        self._stop_agreed = False
        self._asked_to_stop, self._stop_checked_at = False, float("-inf")
        self.stopped = False
        self.bar: tqdm | None = None

    @classmethod
    def from_config(cls, cfg: RunConfig, resuming: bool = False, starting: StartingModel | None = None) -> "Trainer":
        """A Trainer on the datasets in the config's folders (the method's layout), with the
        domains' pixel formats read off the train split (a new run) or checked against it."""
        return cls(cfg, resuming=resuming, starting=starting)

    def info(self, msg: str) -> None:  # for people, from rank 0 only
        distributed.info(self.ranks, msg)

    def warning(self, msg: str) -> None:
        distributed.warning(self.ranks, msg)

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The checkpoint (see checkpointing.run_state): a collective under torchrun."""
        return run_state(self.cfg, self.method, self.schedulers, self.progress, self.ranks)

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint of the same method and architecture (see
        checkpointing.restore_run_state)."""
        self.progress = restore_run_state(state, self.cfg, self.method, self.schedulers, self.ranks)

    def save(self, name: str, background: bool = False, best: dict | None = None,
             snapshot: Path | None = None) -> Path:
        """Checkpoint the current step (see CheckpointWriter.save), with the losses read first and,
        under torchrun, every rank holding rank 0's BatchNorm statistics."""
        self._flush_window()
        if self.ranks.enabled:
            distributed.broadcast_buffers(self.method)
        return self.checkpoints.save(self.state_dict(), self.progress.step, name, background, best, snapshot)

    def save_current(self) -> Path:
        """Checkpoint the current step unless that was just done (waiting for that write)."""
        if self.checkpoints.is_current(self.progress.step):
            return self.checkpoints.latest()
        return self.save(checkpoint_name(self.progress.step))

    # ---- loop ------------------------------------------------------------------------------
    @property
    def schedule(self) -> Schedule:
        t = self.cfg.train
        return Schedule(t.epochs, t.epochs_decay, self.sampler.per_replica, self.cfg.data.batch_size, t.max_steps)

    @property
    def total_epochs(self) -> int:
        return self.schedule.total_epochs

    @property
    def steps_per_epoch(self) -> int:
        return self.schedule.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.schedule.total_steps

    def fit(self) -> Path:
        """Train until the schedule ends, `max_steps`, or a stop signal; returns the last checkpoint."""
        tc = self.cfg.train
        p = self.progress
        main = self.ranks.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.info(self.footprint.describe(self.cfg.train.keep))
            self.footprint.check_disk(self.out)
            self.metrics = self.folder.begin(self.cfg, p.step, p.epoch, self.schedule,
                                             distributed.describe(self.ranks, self.device))
        self.window.reset(first_step=p.step + 1)
        self.checkpoints.last_asked_step = p.step
        self.method.train()
        self.method.log_grad_norm = tc.log_grad_norm
        # Made here, after any resume has loaded the optimizers' state.
        step = CapturedStep(self.method) if self.speed.cuda_graphs else functools.partial(guarded_step, self.method)
        loader = train_loader(self.train_set, self.batches, self.cfg, self.device)
        last_batch = None
        # In logs (not a terminal) a bar redrawn 10 times a second would bury everything else.
        self.bar = tqdm(total=self.total_steps, initial=p.step, desc="train", unit="step", dynamic_ncols=True,
                        mininterval=0.1 if sys.stderr.isatty() else 30, disable=not main)
        with StopRequest((preempt_signal(tc.preempt_signal),)) as self.stop_request:
            try:
                while p.epoch < self.total_epochs and not self._done() and not self._stopping():
                    self.batches.begin(p.epoch, start=p.position)
                    for batch in loader:
                        p.position += len(batch["errors"]) + (len(batch["A"]) if "A" in batch else 0)
                        note_skipped(batch, p, self.ranks)
                        if "A" not in batch and self.ranks.enabled:
                            # Every rank must take part in every step: repeat this rank's last batch.
                            if last_batch is None:
                                raise Img2ImgError(f"rank {self.ranks.rank}: no image of the first batch is readable")
                            batch = last_batch
                        if "A" in batch:
                            last_batch = batch
                            losses, bad = step(self.to_device(batch))
                            self.window.add(losses, bad, len(batch["A"]))
                            p.step += 1
                            self.bar.update(1)
                            if is_due(p.step, tc.log_every):
                                self._flush_window()
                            if is_due(p.step, tc.sample_every):
                                self.save_samples()
                            if is_due(p.step, tc.val_every):
                                self.evaluation.pixels(p, self.metrics)
                            if is_due(p.step, tc.save_every):
                                self.save(checkpoint_name(p.step), background=True)
                        if p.position >= self.sampler.per_replica:
                            self._end_epoch()
                        if self._done() or self._stopping():
                            break
                self._flush_window()
                self.save_samples()
                final = self.save_current()
                if not (self._stop_requested or self._stop_agreed):  # after the checkpoint: its RNG state stands
                    self.evaluation.at_end(p, self.metrics)
            finally:
                self.checkpoints.wait()
                self.bar.close()
                if self.metrics:
                    self.metrics.close()
        self.stopped = self._stop_requested or self._stop_agreed
        if main:
            self.folder.update_status(state="stopped" if self.stopped else "finished", step=p.step, epoch=p.epoch)
        self.info(f"{'stopped' if self.stopped else 'finished'} at step {p.step}; checkpoint {final}")
        if p.bad_images:
            self.warning(f"warning: {p.bad_images} images were skipped (unreadable, or not a usable pair)")
        return final

    def _flush_window(self) -> None:
        """Read the window's losses back from the device: a metrics row, bad-step accounting and,
        under torchrun, the ranks' agreement to stop."""
        w, p, tc = self.window, self.progress, self.cfg.train
        if not w.steps:
            return
        means, bad, streak, stop = w.read(self.ranks, self._stop_requested)
        self._stop_agreed = self._stop_agreed or stop
        images_per_s = w.images * self.ranks.world_size / (time.perf_counter() - w.started)
        first = w.first_step
        w.reset(first_step=p.step + 1)
        if bad:
            self.warning(p.count_bad_steps(bad, first, streak))
        if streak > tc.max_bad_steps:
            raise Img2ImgError(
                f"{streak} steps in a row had non-finite losses (limit --max-bad-steps {tc.max_bad_steps}); "
                f"stopped. The last good checkpoint is in {self.out / 'checkpoints'}; try a lower --lr")
        if means and self.bar:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
        if means and self.metrics:
            self.metrics.write("train", p.step, p.epoch + 1, {**means, "lr": self._lr(),
                                                              "images_per_s": round(images_per_s, 3)})
            self.folder.update_status(step=p.step, epoch=p.epoch + 1, images_per_s=round(images_per_s, 3))

    @property
    def _stop_requested(self) -> bool:
        # A signal, or the run folder's stop request (a starting process cannot miss it), read once a second.
        if self.stop_request is not None and self.stop_request.requested:
            return True
        now = time.monotonic()
        if not self._asked_to_stop and now - self._stop_checked_at >= 1.0:
            self._stop_checked_at = now
            self._asked_to_stop = self.folder.stop_requested()
        return self._asked_to_stop

    def _stopping(self) -> bool:
        # Under torchrun, ranks stop together, at the next window they all read.
        return self._stop_agreed if self.ranks.enabled else self._stop_requested

    def _done(self) -> bool:
        max_steps = self.cfg.train.max_steps
        return bool(max_steps) and self.progress.step >= max_steps

    def _end_epoch(self) -> None:
        p = self.progress
        p.epoch += 1
        p.position = 0
        if self.cfg.train.lr_policy != "plateau":
            for s in self.schedulers.values():
                s.step()
        best = self.evaluation.end_of_epoch(p, self.metrics)
        every, save_every = self.snapshot_every, self.cfg.train.save_every
        last = p.epoch == self.total_epochs
        snapshot = (self.out / "snapshots" / checkpoint_name(p.step, epoch=p.epoch)
                    if every and (p.epoch % every == 0 or last) else None)
        # Full checkpoints follow --save-every in steps, whatever the epochs' length: an epoch end
        # writes one only when that many steps passed since the last, for a new best.pt, or last.
        since_last = p.step - self.checkpoints.last_asked_step
        if best is not None or last or not save_every or since_last >= save_every:
            self.save(checkpoint_name(p.step, epoch=p.epoch), background=True, best=best, snapshot=snapshot)
        elif snapshot is not None:
            self.checkpoints.save_snapshot(snapshot, vars(p).copy())

    def _lr(self) -> float:
        # A device tensor under --cuda-graphs: read at log time only.
        return float(next(iter(self.method.optimizers.values())).param_groups[0]["lr"])

    def save_samples(self) -> Path | None:
        """Rank 0 writes a sample grid; other ranks do nothing."""
        if self._sample_batch is None:
            return None
        return save_sample_grid(self.method, self._sample_batch, self.out, self.progress.step)


def batch_to_device(batch: dict, device: torch.device, speed: SpeedConfig) -> dict:
    return {k: v.to(device, non_blocking=True, memory_format=memory_format(speed))
            if isinstance(v, torch.Tensor) and v.dim() == 4 else v for k, v in batch.items()}


def note_skipped(batch: dict, progress: Progress, ranks) -> None:
    """Each unreadable image of a batch: counted, and one warning line."""
    for err in batch["errors"]:
        progress.bad_images += 1
        rank = f"[rank {ranks.rank}] " if ranks.enabled else ""
        logger.warning(f"{rank}warning: skipped {err} ({progress.bad_images} so far)")


def train_loader(train_set: Dataset, batches: EpochBatches, cfg: RunConfig, device: torch.device) -> DataLoader:
    """The train split's loader. `fit` makes it and drops it when it returns, so that its worker
    processes end then: they ignore SIGTERM (a stop is the trainer's to handle), so the exit
    handlers of a process that still held them would wait for them forever. Its own generator:
    creating an iterator never draws from the global RNG."""
    workers = cfg.data.num_workers
    return DataLoader(train_set, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, collate_fn=collate_skipping_errors,
                      worker_init_fn=ignore_stop_signals, generator=torch.Generator().manual_seed(cfg.train.seed))


def resolve_speed(cfg: RunConfig, device: torch.device) -> SpeedConfig:
    """The run's fast-path switches on `device`, applied process-wide (cuDNN autotuning) and
    checked against CUDA graphs' needs."""
    speed = cfg.train.speed.resolve(device.type, cfg.data.batch_size, cfg.model.netG)
    if cfg.train.deterministic:
        speed = dataclasses.replace(speed, cudnn_benchmark=False)
    check_capturable(speed, device)
    torch.backends.cudnn.benchmark = speed.cudnn_benchmark
    return speed


def is_due(step: int, every: int) -> bool:
    """Whether a periodic action falls on `step`; an interval of 0 means never."""
    return every > 0 and step % every == 0
