"""CycleGAN data: two unrelated image folders, A and B."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..config import RunConfig
from ..errors import Img2ImgError
from ..io.pixel_format import PixelFormat
from ..io.readers import image_shape, list_items, read_item
from .domain import DomainData, formats_of, seeded_subset
from .folders import require_dir, require_images
from .layout import Layout
from .transforms import sample_seed


class UnpairedDataset(DomainData, Dataset):
    """Each A image with a random B image (or the B at the same position with `serial=True`).

    An epoch is max(|A|, |B|) samples. A and B get independently drawn augmentations. With
    `second_source` set (UNSB), each sample also has "A2", another A image drawn at random, with
    its own augmentation, drawn after the others so that A and B are what they would be without.
    """

    def __init__(
        self,
        dir_a: Path | str,
        dir_b: Path | str,
        transform,
        direction: str = "AtoB",
        serial: bool = False,
        seed: int = 0,
        formats: tuple[PixelFormat, PixelFormat] | None = None,
        slice_axis: int = -1,
        max_size: int | None = None,
    ) -> None:
        super().__init__(formats, slice_axis)
        items_a = seeded_subset(list_items(require_images(Path(dir_a), "A"), slice_axis), max_size, seed)
        items_b = seeded_subset(list_items(require_images(Path(dir_b), "B"), slice_axis), max_size, seed + 1)
        self.files_a, self.files_b = (items_b, items_a) if direction == "BtoA" else (items_a, items_b)
        self.transform = transform
        self.serial = serial
        self.seed = seed
        self.second_source = False

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def domain_length(self, side: int) -> int:
        return len((self.files_a, self.files_b)[side])

    def item_name(self, side: int, index: int) -> str:
        return str((self.files_a, self.files_b)[side][index])

    def item_size(self, side: int, index: int) -> tuple[int, int]:
        """(height, width) from the file's header."""
        item = (self.files_a, self.files_b)[side][index]
        return image_shape(item.path, self.slice_axis)[:2]

    def raw_pixels(self, side: int, index: int) -> tuple[str, np.ndarray]:
        item = (self.files_a, self.files_b)[side][index]
        return str(item), read_item(item, slice_axis=self.slice_axis).array

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index))
        item_a = self.files_a[index % len(self.files_a)]
        item_b = self.files_b[index % len(self.files_b) if self.serial else int(rng.integers(len(self.files_b)))]
        seed_a, seed_b = (int(s) for s in rng.integers(2**31, size=2))
        sources = [(0, item_a, seed_a), (1, item_b, seed_b)]
        if self.second_source:
            sources.append((0, self.files_a[int(rng.integers(len(self.files_a)))], int(rng.integers(2**31))))
        try:
            images = []
            for side, item, seed in sources:
                pixels = self.conform(side, read_item(item, slice_axis=self.slice_axis).array, item)
                self.transform.set_random_seed(seed)
                images.append(self.encode(side, self.transform(image=pixels, image_b=pixels)["image"]))
        except Img2ImgError as e:
            return {"error": str(e)}
        except ValueError as e:  # albumentations: e.g. an image smaller than the crop
            return {"error": f"{item_a}: {e}"}
        return {**dict(zip(("A", "B", "A2"), images)), "path": str(item_a.path)}


def _domain_dir(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise Img2ImgError(f"{path}: missing; unpaired data needs {root}/trainA and {root}/trainB folders")
    return path


def _train_split(cfg: RunConfig, transform) -> UnpairedDataset:
    data = cfg.data
    root = require_dir(Path(data.root), "data")
    return UnpairedDataset(_domain_dir(root, "trainA"), _domain_dir(root, "trainB"), transform,
                           serial=data.serial_batches, direction=data.direction, seed=cfg.train.seed,
                           formats=formats_of(cfg), slice_axis=data.slice_axis, max_size=data.max_dataset_size)


def _val_split(cfg: RunConfig, transform, val_dir: Path | None) -> UnpairedDataset | None:
    base = val_dir or Path(cfg.data.root)
    for a, b in (("testA", "testB"), ("valA", "valB")):
        if (base / a).is_dir() and (base / b).is_dir():
            return UnpairedDataset(base / a, base / b, transform, serial=True, direction=cfg.data.direction,
                                   formats=formats_of(cfg), slice_axis=cfg.data.slice_axis)
    return None


# DIR/trainA + DIR/trainB, and DIR/testA + testB (or valA + valB).
UNPAIRED = Layout(_train_split, _val_split, shared_pool=True)
