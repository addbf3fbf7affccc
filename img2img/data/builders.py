"""Datasets for a RunConfig: where the train and validation splits of each layout live. The
layout follows the method's `dataset_kind`."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..config import RunConfig, method_class
from ..errors import Img2ImgError
from .folders import require_dir, val_split_dir
from .paired import PairedDataset
from .transforms import eval_transform, train_transform
from .unpaired import UnpairedDataset


def build_datasets(cfg: RunConfig) -> tuple[Dataset, Dataset | None]:
    """(train split, validation split or None)."""
    return build_train_dataset(cfg), build_val_dataset(cfg)


def build_train_dataset(cfg: RunConfig) -> Dataset:
    data = cfg.data
    transform = train_transform(data.load_size, data.size, data.flip, data.resize)
    root = require_dir(Path(data.root), "data")
    if method_class(cfg.method).dataset_kind == "unpaired":
        return UnpairedDataset(
            _domain_dir(root, "trainA"), _domain_dir(root, "trainB"), transform,
            direction=data.direction, serial=data.serial_batches, seed=cfg.train.seed,
        )
    # Accept DIR (with DIR/train) or the split folder itself.
    split = root / "train" if (root / "train").is_dir() else root
    return PairedDataset(split, transform, direction=data.direction, seed=cfg.train.seed)


def build_val_dataset(cfg: RunConfig, val_dir: str | None = None) -> Dataset | None:
    """The validation split at the training size (no augmentation), or None if there is none.
    `val_dir` overrides the config's."""
    data = cfg.data
    transform = eval_transform(data.size, data.resize)
    root = Path(data.root)
    val_dir = val_dir or data.val_dir
    if method_class(cfg.method).dataset_kind == "unpaired":
        base = Path(val_dir) if val_dir else root
        for a, b in (("testA", "testB"), ("valA", "valB")):
            if (base / a).is_dir() and (base / b).is_dir():
                return UnpairedDataset(base / a, base / b, transform, direction=data.direction, serial=True)
        return None
    split = Path(val_dir) if val_dir else val_split_dir(root)
    return PairedDataset(split, transform, direction=data.direction) if split else None


def _domain_dir(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise Img2ImgError(f"{path}: missing; unpaired data needs {root}/trainA and {root}/trainB folders")
    return path
