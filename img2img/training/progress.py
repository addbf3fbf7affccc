"""Where a run is (Progress), its learning-rate schedule, and the losses accumulated between
metrics rows (LossWindow)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import Ranks


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    # Samples of the current epoch already trained on (resume starts after them).
    position: int = 0
    bad_images: int = 0
    bad_steps: int = 0
    best_fid: float | None = None
    best_epoch: int = 0

    def count_bad_steps(self, bad: int, first: int, streak: int) -> str:
        """Count `bad` skipped steps among `first`..step; the warning that says so."""
        self.bad_steps += bad
        which = f"step {self.step} had a non-finite loss and was" if self.step == first else \
            f"{bad} of steps {first}-{self.step} had non-finite losses and were"
        return f"warning: {which} skipped ({self.bad_steps} so far, {streak} in a row at most)"


class LossWindow:
    """Losses summed on the device between metrics rows and read back once per row, so a
    training step never waits for the device. Steps whose losses were not finite are counted,
    not summed; the longest streak of them is tracked across windows."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.streak = torch.zeros((), device=device)
        self.reset(first_step=1)

    def reset(self, first_step: int) -> None:
        zero = torch.zeros((), device=self.device)
        self.sums: dict[str, torch.Tensor] = {}
        self.good, self.bad, self.longest_streak = zero, zero.clone(), self.streak.clone()
        self.steps, self.images, self.first_step = 0, 0, first_step
        self.started = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], bad: torch.Tensor, images: int) -> None:
        for k, v in losses.items():
            v = torch.where(bad, 0.0, v.float())
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.good = self.good + (~bad).float()
        self.bad = self.bad + bad.float()
        self.streak = torch.where(bad, self.streak + 1, 0.0)
        self.longest_streak = torch.maximum(self.longest_streak, self.streak)
        self.steps += 1
        self.images += images

    def read(self, ranks: Ranks, stop_requested: bool) -> tuple[dict[str, float], int, int, bool]:
        """(mean losses over good steps of all ranks, bad steps, longest bad streak, any rank
        asked to stop). The one host synchronisation of a window; a collective under torchrun."""
        keys = list(self.sums)
        summed = torch.stack([*(self.sums[k] for k in keys), self.good,
                              torch.tensor(float(stop_requested), device=self.device)])
        if ranks.enabled:
            dist.all_reduce(summed)
        # `bad` is already the same on every rank (guarded_step agrees on it).
        values = torch.cat([summed, torch.stack([self.bad, self.longest_streak])]).tolist()
        good = values[len(keys)]
        means = {k: values[i] / good for i, k in enumerate(keys)} if good else {}
        return means, int(values[-2]), int(values[-1]), values[len(keys) + 1] > 0
