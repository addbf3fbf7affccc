"""What a data layout is: how a dataset folder is laid out, and where its train and validation
splits live. Each dataset file defines its own; `data.builders.LAYOUTS` names them, and a method
names the one it trains on (`TrainingMethod.dataset_kind`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ..config import RunConfig


@dataclass(frozen=True)
class Layout:
    """`train(cfg, transform)` and `val(cfg, transform, val_dir)` build the splits (`val` gives
    None where there is none). `shared_pool`: a domain's samples meet in an image pool whatever
    the batch size (unpaired methods), so uncropped images must all have one size."""

    train: Callable[[RunConfig, Callable], Dataset]
    val: Callable[[RunConfig, Callable, Path | None], Dataset | None]
    shared_pool: bool = False


def split_or_root(root: Path) -> Path:
    """DIR/train when it exists, else DIR itself (a folder given as its own train split)."""
    return root / "train" if (root / "train").is_dir() else root
