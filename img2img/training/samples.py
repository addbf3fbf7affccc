"""Sample grids: a fixed batch (the first validation images, or training images without a val
split) translated by the method at chosen steps, written as PNGs under samples/."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset
from torchvision.utils import make_grid, save_image

from ..data.loader import collate_skipping_errors
from ..files import atomic_write
from ..methods import TrainingMethod


def fixed_sample_batch(source: Dataset, count: int, to_device: Callable[[dict], dict]) -> dict | None:
    """The first `count` readable items of `source`, as one batch on the device (None: none)."""
    items = []
    for i in range(len(source)):
        item = source[i]
        if "error" not in item:
            items.append(item)
        if len(items) == count:
            break
    if not items:
        return None
    return to_device(collate_skipping_errors(items))


def save_sample_grid(method: TrainingMethod, batch: dict, out: Path, step: int) -> Path:
    grid = method.sample(batch)  # [rows, cols, C, H, W]
    rows, cols = grid.shape[:2]
    image = make_grid(grid.flatten(0, 1).float().cpu(), nrow=cols, normalize=True, value_range=(-1, 1), padding=2)
    path = out / "samples" / f"step_{step:07d}.png"
    atomic_write(path, lambda f: save_image(image, f, format="png"))
    return path
