"""Disk taken by the checkpoints of the paper's pix2pix schedules (200 epochs at batch 1, unet_256,
ngf 64): today's defaults against the old ones (every numbered checkpoint kept, one at every
epoch end and every 1000 steps, no snapshots), from the sizes of real files written here.

    python benchmarks/checkpoint_footprint.py
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset

from img2img.methods import new_run_config
from img2img.persist.checkpoint import generators_only, save_checkpoint
from img2img.training import Trainer
from img2img.training.guard import guarded_step

SCHEDULES = {"maps": 1096, "facades": 400}


class RandomPairs(Dataset):
    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        g = torch.Generator().manual_seed(key[1] if isinstance(key, tuple) else key)
        return {"A": torch.rand(3, 256, 256, generator=g) * 2 - 1, "B": torch.rand(3, 256, 256, generator=g) * 2 - 1}


def real_sizes(trainer: Trainer, folder: Path) -> tuple[int, int]:
    """Bytes of a full checkpoint after one step (Adam's moments exist then) and of a snapshot."""
    trainer.method.train()
    batch = {k: v[None] for k, v in RandomPairs(1)[0].items()}
    guarded_step(trainer.method, batch)
    state = trainer.state_dict()
    save_checkpoint(folder / "full.pt", state)
    save_checkpoint(folder / "snapshot.pt", generators_only(state, half=True))
    return (folder / "full.pt").stat().st_size, (folder / "snapshot.pt").stat().st_size


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, pairs in SCHEDULES.items():
            cfg = new_run_config("pix2pix")
            cfg.data.root, cfg.train.out, cfg.train.device, cfg.train.fid_every = tmp, tmp, "cpu", 0
            old = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, keep=0, snapshot_every=0))
            new = Trainer(cfg, RandomPairs(pairs))
            before = Trainer(old, RandomPairs(pairs)).footprint
            after = new.footprint
            full, snapshot = real_sizes(new, Path(tmp))
            print(f"{name}: {pairs} pairs x {new.total_epochs} epochs = {new.total_steps} steps at batch 1")
            print(f"  real files: full checkpoint {full / 1e6:.1f} MB (predicted {after.full_bytes / 1e6:.1f}), "
                  f"snapshot {snapshot / 1e6:.1f} MB (predicted {after.snapshot_bytes / 1e6:.1f})")
            # The old defaults kept every numbered file: one per epoch end and one per 1000 steps.
            old_files = before.full_files - 2
            print(f"  before: {old_files} full checkpoints kept, {old_files * full / 1e9:.0f} GB")
            print(f"  after:  at most {after.full_files} full checkpoints at once and {after.snapshots} snapshots, "
                  f"{(after.full_files * full + after.snapshots * snapshot) / 1e9:.1f} GB")
            print(f"  the run's first line: {after.describe(cfg.train.keep)}")


if __name__ == "__main__":
    main()
