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


class EpochBatches:
    """Batches of an `EpochSampler`'s keys, epoch after epoch up to `epochs`, each epoch ending
    with its own (possibly partial) batch, as one DataLoader pass per epoch would give. A
    DataLoader iterates it once for the whole run, so its workers go on loading across epoch
    ends instead of starting each epoch with nothing prefetched."""

    def __init__(self, sampler: EpochSampler, batch_size: int, epochs: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.epochs = epochs
        self.first_epoch = 0
        self.start = 0

    def begin(self, epoch: int, start: int = 0) -> None:
        """The next iteration starts at `epoch`, skipping its first `start` samples."""
        self.first_epoch, self.start = epoch, start

    def __iter__(self):
        for epoch in range(self.first_epoch, self.epochs):
            self.sampler.set_epoch(epoch, start=self.start if epoch == self.first_epoch else 0)
            keys = list(self.sampler)
            for i in range(0, len(keys), self.batch_size):
                yield keys[i : i + self.batch_size]

    def __len__(self) -> int:
        per_epoch = -(-self.sampler.per_replica // self.batch_size)
        first = -(-(self.sampler.per_replica - self.start) // self.batch_size)
        return first + per_epoch * max(self.epochs - self.first_epoch - 1, 0)


def collate_skipping_errors(items: list[dict]) -> dict:
    """Batch the good samples; unreadable ones travel along as `errors` to be reported."""
    good = [it for it in items if "error" not in it]
    batch = default_collate(good) if good else {}
    batch["errors"] = [it["error"] for it in items if "error" in it]
    return batch
