"""Albumentations pipelines shared by paired and unpaired data."""
from __future__ import annotations

import albumentations as A
import numpy as np


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
