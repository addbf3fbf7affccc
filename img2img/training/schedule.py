"""A run's length (epochs and steps) and its learning-rate factor per epoch: the arithmetic the
trainer and the checkpoint footprint both count with."""
from __future__ import annotations

from dataclasses import dataclass


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
