"""Datasets for a RunConfig: where the train and validation splits of each layout live. The
layout follows the method's `dataset_kind`; the geometry follows `data.preprocess`, and the
pixels the model's formats (see data.domain)."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..config import RunConfig, method_class
from ..errors import Img2ImgError
from ..models import fit_to_size, generator_size_multiple
from .colour import ColourPhotos
from .domain import formats_of
from .folders import require_dir, val_split_dir
from .paired import PairedDataset
from .transforms import eval_transform, train_transform
from .unpaired import UnpairedDataset


def build_datasets(cfg: RunConfig) -> tuple[Dataset, Dataset | None]:
    """(train split, validation split or None)."""
    return build_train_dataset(cfg), build_val_dataset(cfg)


def size_multiple(cfg: RunConfig) -> int:
    """The generator's input size multiple, to which uncropped images are padded."""
    return generator_size_multiple(fit_to_size(cfg.model, cfg.data.crop_size).netG)


def build_train_dataset(cfg: RunConfig) -> Dataset:
    data = cfg.data
    transform = train_transform(data, size_multiple(cfg))
    root = require_dir(Path(data.root), "data")
    kind = method_class(cfg.method).dataset_kind
    if kind == "colour":
        split = root / "train" if (root / "train").is_dir() else root
        return ColourPhotos(split, transform, seed=cfg.train.seed, formats=formats_of(cfg),
                            max_size=data.max_dataset_size)
    common = dict(direction=data.direction, seed=cfg.train.seed, formats=formats_of(cfg), slice_axis=data.slice_axis,
                  max_size=data.max_dataset_size)
    if kind == "unpaired":
        return UnpairedDataset(_domain_dir(root, "trainA"), _domain_dir(root, "trainB"), transform,
                               serial=data.serial_batches, **common)
    # Accept DIR (with DIR/train) or the split folder itself.
    split = root / "train" if (root / "train").is_dir() else root
    return PairedDataset(split, transform, **common)


def build_val_dataset(cfg: RunConfig, val_dir: str | None = None) -> Dataset | None:
    """The validation split at the training geometry (no augmentation), or None if there is none.
    `val_dir` overrides the config's."""
    data = cfg.data
    transform = eval_transform(data, size_multiple(cfg))
    root = Path(data.root)
    val_dir = val_dir or data.val_dir
    kind = method_class(cfg.method).dataset_kind
    if kind == "colour":
        split = Path(val_dir) if val_dir else val_split_dir(root)
        return ColourPhotos(split, transform, formats=formats_of(cfg)) if split else None
    common = dict(direction=data.direction, formats=formats_of(cfg), slice_axis=data.slice_axis)
    if kind == "unpaired":
        base = Path(val_dir) if val_dir else root
        for a, b in (("testA", "testB"), ("valA", "valB")):
            if (base / a).is_dir() and (base / b).is_dir():
                return UnpairedDataset(base / a, base / b, transform, serial=True, **common)
        return None
    split = Path(val_dir) if val_dir else val_split_dir(root)
    return PairedDataset(split, transform, **common) if split else None


def check_batch_sizes(cfg: RunConfig, train_set: Dataset) -> None:
    """Where no crop fixes the training size (--preprocess none or scale_width), a batch needs
    images of one size, and so does an unpaired method's image pool: refused in one line
    otherwise, before training starts. Sizes come from the files' headers."""
    data = cfg.data
    if data.preprocess not in ("none", "scale_width"):
        return
    unpaired = method_class(cfg.method).dataset_kind == "unpaired"
    if data.batch_size == 1 and not unpaired:
        return
    multiple = size_multiple(cfg)
    for side in (0, 1):
        sizes = {}
        for index in range(train_set.domain_length(side)):
            try:
                height, width = train_set.item_size(side, index)
            except Img2ImgError:
                continue  # reported when training meets it
            if data.preprocess == "scale_width":
                height, width = max(1, round(height * data.load_frame[0] / width)), data.load_frame[0]
            sizes.setdefault((-(-width // multiple) * multiple, -(-height // multiple) * multiple), index)
            if len(sizes) > 1:
                (first, i), (other, j) = sizes.items()
                what = "an unpaired method's image pool" if unpaired else f"--batch-size {data.batch_size}"
                raise Img2ImgError(
                    f"--preprocess {data.preprocess}: {train_set.item_name(side, j)} trains at {other[0]}x{other[1]} "
                    f"but {train_set.item_name(side, i)} at {first[0]}x{first[1]}, and {what} needs one size; "
                    "use --batch-size 1 (paired data), images of one size, or a cropping --preprocess mode")


def _domain_dir(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise Img2ImgError(f"{path}: missing; unpaired data needs {root}/trainA and {root}/trainB folders")
    return path
