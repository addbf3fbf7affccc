"""A run's length (epochs and steps) and its learning-rate factor per epoch: the arithmetic the
trainer and the checkpoint footprint both count with."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainConfig

# --lr-policy plateau, as the canonical code: x0.2 after 5 evaluations without a 1% improvement.
PLATEAU = {"mode": "min", "factor": 0.2, "threshold": 0.01, "patience": 5}


@dataclass(frozen=True)
class Schedule:
    epochs: int  # at constant learning rate
    epochs_decay: int  # of decay
    samples_per_epoch: int  # this rank's share
    batch_size: int
    max_steps: int | None = None

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.samples_per_epoch // self.batch_size)

    @property
    def total_steps(self) -> int:
        steps = self.steps_per_epoch * self.total_epochs
        return min(steps, self.max_steps) if self.max_steps else steps


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for `epochs`, then linear decay to 0 over `epochs_decay` (the canonical schedule)."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


def lr_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler of `train.lr_policy`, stepped once per epoch (plateau: with the watched
    metric, at each evaluation). torch's schedulers fill a tensor learning rate in place, which
    a captured CUDA graph needs."""
    policy = train.lr_policy
    if policy == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, train.epochs, train.epochs_decay))
    if policy == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.lr_decay_epochs, gamma=0.1)
    if policy == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs + train.epochs_decay,
                                                          eta_min=0.0)
    if policy == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **PLATEAU)
    raise ValueError(f"unknown --lr-policy {policy!r}")


def plateau_metric(results: dict | None) -> tuple[str, float] | None:
    """What --lr-policy plateau watches in an evaluation's results: the mean val FID where it was
    computed, else the val L1 (paired data); None if neither."""
    if results is None:
        return None
    fids = [v for k, v in results.items() if k in ("fid_AtoB", "fid_BtoA")]
    if fids:
        return "val FID", sum(fids) / len(fids)
    if "val_l1" in results:
        return "val L1", results["val_l1"]
    return None
