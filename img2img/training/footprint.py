"""The disk a run's checkpoints take: said before the run starts, and checked against the disk."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import TrainConfig
from ..errors import Img2ImgError
from ..log import logger
from .schedule import Schedule


def _size(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e9 else f"{n / 1e6:.3g} MB"


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@dataclass
class Footprint:
    full_bytes: int      # one full checkpoint: every network, Adam's two moments per parameter
    snapshot_bytes: int  # one snapshot: the translating generators
    full_files: int      # full checkpoints on disk at once, at most
    snapshots: int       # snapshots over the whole run
    warned: bool = False

    @classmethod
    def of(cls, method, tc: TrainConfig, schedule: Schedule, snapshot_every: int) -> "Footprint":
        """Of a run of `method` (a TrainingMethod with its networks and optimizers built)."""
        networks = sum(_bytes(t) for net in method.networks.values() for t in net.state_dict().values())
        # Adam's moments are created at the first step: count them from the parameters.
        moments = sum(2 * _bytes(p) for opt in method.optimizers.values() for g in opt.param_groups for p in g["params"])
        snapshot = sum(t.numel() * (2 if tc.snapshot_half and t.is_floating_point() else t.element_size())
                       for d in method.spec.generator_keys for t in method.generator(d).state_dict().values())
        if tc.keep:
            full_files = tc.keep + 2  # best.pt, and the one being written before the oldest is pruned
        else:
            by_steps = schedule.total_steps // tc.save_every if tc.save_every else 0
            full_files = schedule.total_epochs + by_steps + 2
        every, epochs = snapshot_every, schedule.total_epochs
        snapshots = epochs // every + (epochs % every > 0) if every else 0
        return cls(networks + moments, snapshot, full_files, snapshots)

    @property
    def total_bytes(self) -> int:
        return self.full_files * self.full_bytes + self.snapshots * self.snapshot_bytes

    def describe(self, keep: int) -> str:
        kept = f"--keep {keep}, best.pt and one being written" if keep else "--keep 0: all of them"
        return (f"checkpoints: at most {self.full_files} full of {_size(self.full_bytes)} ({kept}) and "
                f"{self.snapshots} generator snapshots of {_size(self.snapshot_bytes)}: about "
                f"{_size(self.total_bytes)} over the whole run")

    def check_disk(self, out: Path) -> None:
        """Refuse a disk that cannot hold one checkpoint; warn when it cannot hold the run's."""
        free = shutil.disk_usage(out).free
        if free < self.full_bytes:
            raise Img2ImgError(f"{out}: its disk has {_size(free)} free, less than one checkpoint needs "
                               f"({_size(self.full_bytes)}); free some space or choose another --out")
        if free < self.total_bytes:
            logger.warning(f"warning: {out}: its disk has {_size(free)} free; this run's checkpoints may need up to "
                           f"{_size(self.total_bytes)} (see --keep and --snapshot-every)")

    def warn_if_short(self, out: Path) -> None:
        """Once per run: the next checkpoint may not fit (its write would fail, keeping the previous one)."""
        free = shutil.disk_usage(out).free
        if free < self.full_bytes and not self.warned:
            self.warned = True
            logger.warning(f"warning: {out}: {_size(free)} free, less than the next checkpoint needs "
                           f"({_size(self.full_bytes)}); its write may fail, and the previous one is kept")


@dataclass(frozen=True)
class RunEstimate:
    """What a run will take, from its config alone (its networks built on the meta device: no
    memory): steps, disk for its checkpoints and snapshots, and the peak memory of a step
    (weights, gradients, Adam's moments, and each network's activations at the batch and crop
    size, counted twice for the backward pass)."""

    total_steps: int
    disk_bytes: int
    memory_bytes: int

    def describe(self) -> str:
        return (f"about {self.total_steps:,} steps, {_size(self.disk_bytes)} of checkpoints and snapshots, "
                f"{_size(self.memory_bytes)} of memory at its peak")


def estimate_run(cfg, samples: int) -> RunEstimate:
    """The estimate of a run of `cfg` on `samples` training samples per epoch."""
    import dataclasses

    from ..config import SpeedConfig
    from ..methods import build_method
    from ..models import fit_to_size

    cfg = dataclasses.replace(cfg, model=fit_to_size(cfg.model, cfg.data.crop_size))
    with torch.device("meta"):
        method = build_method(cfg, "meta", SpeedConfig(fused_adam=False).resolve("cpu"))
    t = cfg.train
    schedule = Schedule(t.epochs, t.epochs_decay, max(1, samples), cfg.data.batch_size, t.max_steps)
    every = t.snapshot_every if t.snapshot_every is not None else max(1, round(schedule.total_epochs / 20))
    footprint = Footprint.of(method, t, schedule, every)
    parameters = sum(_bytes(p) for p in method.networks.parameters())
    width, height = cfg.data.crop_size
    activations = 0

    def count(module, inputs, output) -> None:
        nonlocal activations
        for out in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(out, torch.Tensor):
                activations += _bytes(out)

    hooks = [m.register_forward_hook(count) for m in method.networks.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            for direction in method.spec.generator_keys:
                channels = cfg.model.in_channels if direction == "AtoB" else cfg.model.out_channels
                method.generator(direction)(torch.empty(cfg.data.batch_size, channels, height, width, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    # The generators' activations stand for the discriminators' too (they see the same images).
    memory = 2 * parameters + footprint.full_bytes + 2 * 2 * activations
    return RunEstimate(schedule.total_steps, footprint.total_bytes, memory)
