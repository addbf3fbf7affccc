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
