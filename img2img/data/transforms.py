"""Albumentations pipelines shared by paired and unpaired data."""
from __future__ import annotations

import albumentations as A
import numpy as np
import torch


def train_transform(load_size: int, size: int, flip: bool) -> A.Compose:
    """Resize to load_size, random crop to size, optional horizontal flip.

    `image_b` is an additional target, so paired images always get identical geometry.
    """
    if size > load_size:
        raise ValueError(f"crop size {size} is larger than load size {load_size}")
    steps = [A.Resize(load_size, load_size, interpolation=3), A.RandomCrop(size, size)]  # 3 = bicubic
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps, additional_targets={"image_b": "image"})


def eval_transform(size: int) -> A.Compose:
    return A.Compose([A.Resize(size, size, interpolation=3)], additional_targets={"image_b": "image"})


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one sample: independent of worker count and of where a run resumed."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW float in [-1, 1]."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """CHW in [-1, 1] -> HWC uint8."""
    return t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
