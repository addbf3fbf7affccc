"""Sampling and batching shared by every dataset."""
from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler, default_collate


class EpochSampler(Sampler):
    """Yields `(epoch, index)` keys in a per-epoch order derived from (seed, epoch) alone.

    `start` skips the first samples of the epoch, so a run resumed mid-epoch sees exactly the
    samples it had not yet seen. With `num_replicas` > 1 each rank takes every n-th sample, as
    DistributedSampler does (padding by repetition so ranks stay in step).
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int = 0, rank: int = 0, num_replicas: int = 1) -> None:
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.num_replicas = rank, num_replicas
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    @property
    def per_replica(self) -> int:
        return math.ceil(self.length / self.num_replicas)

    def __len__(self) -> int:
        return self.per_replica - self.start

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.per_replica * self.num_replicas
        order += order[: total - len(order)]
        mine = order[self.rank : total : self.num_replicas]
        return iter([(self.epoch, i) for i in mine[self.start :]])


def collate_skipping_errors(items: list[dict]) -> dict:
    """Batch the good samples; unreadable ones travel along as `errors` to be reported."""
    good = [it for it in items if "error" not in it]
    batch = default_collate(good) if good else {}
    batch["errors"] = [it["error"] for it in items if "error" in it]
    return batch
