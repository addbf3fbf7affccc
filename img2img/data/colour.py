"""Colourisation data: any folder of colour photos. Each photo gives its Lab lightness L (the
input) and its colour ab (the target), after the run's geometry (crops, flips)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..config import RunConfig
from ..errors import Img2ImgError
from ..io.lab import as_rgb, rgb_to_lab
from ..io.pixel_format import PixelFormat
from ..io.readers import image_shape, list_items, read_item
from .domain import DomainData, formats_of, seeded_subset
from .folders import require_dir, require_images, val_split_dir
from .layout import Layout, split_or_root
from .transforms import sample_seed


class ColourPhotos(DomainData, Dataset):
    """The photos of one folder (walked flat), as (L, ab) samples; a photo's augmentation is
    seeded by `(epoch, index)`, as in the other datasets."""

    def __init__(self, folder: Path | str, transform, seed: int = 0,
                 formats: tuple[PixelFormat, PixelFormat] | None = None, max_size: int | None = None) -> None:
        super().__init__(formats, slice_axis=-1)
        self.items = seeded_subset(list_items(require_images(Path(folder), "photo")), max_size, seed)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def domain_length(self, side: int) -> int:
        return len(self.items)

    def item_name(self, side: int, index: int) -> str:
        return str(self.items[index])

    def item_size(self, side: int, index: int) -> tuple[int, int]:
        return image_shape(self.items[index].path)[:2]

    def _rgb(self, index: int) -> np.ndarray:
        pixels = read_item(self.items[index]).array
        if pixels.dtype != np.uint8:
            raise Img2ImgError(f"{self.items[index]}: is {pixels.dtype}; colourisation reads 8-bit photos")
        return as_rgb(pixels)

    def raw_pixels(self, side: int, index: int) -> tuple[str, np.ndarray]:
        lab = rgb_to_lab(self._rgb(index))
        return str(self.items[index]), lab[..., :1] if side == 0 else lab[..., 1:]

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        try:
            rgb = self._rgb(index)
            self.transform.set_random_seed(sample_seed(self.seed, epoch, index))
            lab = rgb_to_lab(self.transform(image=rgb, image_b=rgb)["image"])
        except Img2ImgError as e:
            return {"error": str(e)}
        except ValueError as e:  # albumentations: e.g. a photo smaller than the crop
            return {"error": f"{self.items[index]}: {e}"}
        return {"A": self.encode(0, lab[..., :1]), "B": self.encode(1, lab[..., 1:]), "path": str(self.items[index])}


def _train_split(cfg: RunConfig, transform) -> ColourPhotos:
    root = require_dir(Path(cfg.data.root), "data")
    return ColourPhotos(split_or_root(root), transform, seed=cfg.train.seed, formats=formats_of(cfg),
                        max_size=cfg.data.max_dataset_size)


def _val_split(cfg: RunConfig, transform, val_dir: Path | None) -> ColourPhotos | None:
    split = val_dir or val_split_dir(Path(cfg.data.root))
    return ColourPhotos(split, transform, formats=formats_of(cfg)) if split else None


# Any folder of colour photos (DIR/train, or DIR itself), with DIR/val or DIR/test.
COLOUR = Layout(_train_split, _val_split)
