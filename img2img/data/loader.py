"""Sampling and batching shared by every dataset."""
from __future__ import annotations

from torch.utils.data import DistributedSampler, default_collate


class EpochSampler(DistributedSampler):
    """torch's DistributedSampler (shuffle per (seed, epoch), each rank every n-th sample, padded
    by repetition so ranks stay in step) yielding `(epoch, index)` keys, from which datasets
    seed each sample's augmentation.

    `set_epoch(epoch, start)` skips the first `start` samples of this rank's share, so a run
    resumed mid-epoch sees exactly the samples it had not yet seen.
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int = 0, rank: int = 0, num_replicas: int = 1) -> None:
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    @property
    def per_replica(self) -> int:
        return self.num_samples

    def __len__(self) -> int:
        return self.num_samples - self.start

    def __iter__(self):
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, i) for i in indices])


def collate_skipping_errors(items: list[dict]) -> dict:
    """Batch the good samples; unreadable ones travel along as `errors` to be reported."""
    good = [it for it in items if "error" not in it]
    batch = default_collate(good) if good else {}
    batch["errors"] = [it["error"] for it in items if "error" in it]
    return batch
