"""Datasets for a RunConfig: the train and validation splits of a layout (`LAYOUTS`, named by
the method's `dataset_kind`) at the geometry of `data.preprocess`, with the model's pixel formats
(see data.domain)."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..config import RunConfig
from ..errors import Img2ImgError
from ..models import fit_to_size, generator_size_multiple
from ..registry import Registry
from .colour import COLOUR
from .layout import Layout
from .paired import PAIRED
from .transforms import eval_transform, train_transform
from .unpaired import UNPAIRED

# The layouts a method may name as its `dataset_kind`.
LAYOUTS: Registry[Layout] = Registry("data layout", {"paired": PAIRED, "unpaired": UNPAIRED, "colour": COLOUR})


def layout(kind: str) -> Layout:
    return LAYOUTS[kind]


def build_datasets(cfg: RunConfig, kind: str) -> tuple[Dataset, Dataset | None]:
    """(train split, validation split or None) of layout `kind`."""
    return build_train_dataset(cfg, kind), build_val_dataset(cfg, kind)


def size_multiple(cfg: RunConfig) -> int:
    """The generator's input size multiple, to which uncropped images are padded."""
    return generator_size_multiple(fit_to_size(cfg.model, cfg.data.crop_size).netG)


def build_train_dataset(cfg: RunConfig, kind: str) -> Dataset:
    return layout(kind).train(cfg, train_transform(cfg.data, size_multiple(cfg)))


def build_val_dataset(cfg: RunConfig, kind: str, val_dir: str | None = None) -> Dataset | None:
    """The validation split at the training geometry (no augmentation), or None if there is none.
    `val_dir` overrides the config's."""
    val_dir = val_dir or cfg.data.val_dir
    return layout(kind).val(cfg, eval_transform(cfg.data, size_multiple(cfg)), Path(val_dir) if val_dir else None)


def check_batch_sizes(cfg: RunConfig, kind: str, train_set: Dataset) -> None:
    """Where no crop fixes the training size (--preprocess none or scale_width), a batch needs
    images of one size, and so does an unpaired method's image pool: refused in one line
    otherwise, before training starts. Sizes come from the files' headers."""
    data = cfg.data
    if data.preprocess not in ("none", "scale_width"):
        return
    pooled = layout(kind).shared_pool
    if data.batch_size == 1 and not pooled:
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
                what = "an unpaired method's image pool" if pooled else f"--batch-size {data.batch_size}"
                raise Img2ImgError(
                    f"--preprocess {data.preprocess}: {train_set.item_name(side, j)} trains at {other[0]}x{other[1]} "
                    f"but {train_set.item_name(side, i)} at {first[0]}x{first[1]}, and {what} needs one size; "
                    "use --batch-size 1 (paired data), images of one size, or a cropping --preprocess mode")
