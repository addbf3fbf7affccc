"""pix2pix data: each sample is an (A, B) pair with identical augmentation geometry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..config import RunConfig
from ..errors import ImageReadError, Img2ImgError
from ..io.pixel_format import PixelFormat
from ..io.readers import ImageItem, image_shape, image_size, list_items, read_item
from .domain import DomainData, formats_of, seeded_subset
from .folders import require_dir, require_images, val_split_dir
from .layout import Layout, split_or_root
from .transforms import sample_seed


class PairedDataset(DomainData, Dataset):
    """Paired images from one split folder, in either of the two pix2pix layouts:

    - `split/*.jpg`, each file A and B side by side (A left);
    - `split/A/*` and `split/B/*` with matching file names (volumes: matching slices).

    Items are looked up by `(epoch, index)`, which seeds the augmentation, so a sample is the
    same whichever worker loads it and whenever the run was resumed.
    """

    def __init__(self, split_dir: Path | str, transform, direction: str = "AtoB", seed: int = 0,
                 formats: tuple[PixelFormat, PixelFormat] | None = None, slice_axis: int = -1,
                 max_size: int | None = None) -> None:
        super().__init__(formats, slice_axis)
        self.split_dir = require_dir(Path(split_dir), "data")
        self.transform = transform
        self.swap = direction == "BtoA"
        self.seed = seed
        if (self.split_dir / "A").is_dir() or (self.split_dir / "B").is_dir():
            self.pairs = _folder_pairs(self.split_dir, slice_axis)
        else:
            self.pairs = [(item, None) for item in list_items(require_images(self.split_dir, "data"), slice_axis)]
            _check_side_by_side(self.pairs)
        self.pairs = seeded_subset(self.pairs, max_size, seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def domain_length(self, side: int) -> int:
        return len(self.pairs)

    def raw_pixels(self, side: int, index: int) -> tuple[str, np.ndarray]:
        a, b = self._load_raw(index)
        item_a, item_b = self.pairs[index]
        names = (str(item_a), str(item_b or item_a))
        if self.swap:
            names = names[::-1]
        return names[side], (a, b)[side]

    def item_name(self, side: int, index: int) -> str:
        item_a, item_b = self.pairs[index]
        names = (item_a, item_b or item_a)
        return str(names[::-1][side] if self.swap else names[side])

    def item_size(self, side: int, index: int) -> tuple[int, int]:
        """(height, width) of one side's image, from its file's header."""
        item_a, item_b = self.pairs[index]
        height, width, _ = image_shape(item_a.path, self.slice_axis)
        return (height, width // 2) if item_b is None else (height, width)

    def _load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(input, output) pixels as read, after the direction's swap."""
        item_a, item_b = self.pairs[index]
        if item_b is None:
            ab = read_item(item_a, slice_axis=self.slice_axis).array
            if ab.shape[1] % 2:
                raise ImageReadError(item_a, f"a mismatched pair: width {ab.shape[1]} is odd, so it cannot be split "
                                     "into A|B halves")
            half = ab.shape[1] // 2
            a, b = ab[:, :half], ab[:, half:]
        else:
            a = read_item(item_a, slice_axis=self.slice_axis).array
            b = read_item(item_b, slice_axis=self.slice_axis).array
            if a.shape[:2] != b.shape[:2]:
                raise ImageReadError(item_b, f"a mismatched pair: size {b.shape[1]}x{b.shape[0]} differs from its A "
                                     f"image {item_a.path.name} ({a.shape[1]}x{a.shape[0]})")
        return (b, a) if self.swap else (a, b)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(input, output) pixels of the domains' formats, or an ImageReadError."""
        a, b = self._load_raw(index)
        item_a, item_b = self.pairs[index]
        names = (item_a, item_b or item_a)
        if self.swap:
            names = names[::-1]
        return self.conform(0, a, names[0]), self.conform(1, b, names[1])

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path = str(self.pairs[index][0])
        try:
            a, b = self.load_pair(index)
            self.transform.set_random_seed(sample_seed(self.seed, epoch, index))
            out = self.transform(image=a, image_b=b)
        except Img2ImgError as e:
            return {"error": str(e)}
        except ValueError as e:  # albumentations: e.g. an image smaller than the crop
            return {"error": f"{path}: {e}"}
        return {"A": self.encode(0, out["image"]), "B": self.encode(1, out["image_b"]), "path": path}


def _folder_pairs(split_dir: Path, slice_axis: int) -> list[tuple[ImageItem, ImageItem]]:
    items_a = {it.key: it for it in list_items(require_images(split_dir / "A", "A"), slice_axis)}
    items_b = {it.key: it for it in list_items(require_images(split_dir / "B", "B"), slice_axis)}
    only_a, only_b = sorted(items_a.keys() - items_b), sorted(items_b.keys() - items_a)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} in A/ without a match in B/ (e.g. {only_a[0]})")
        if only_b:
            parts.append(f"{len(only_b)} in B/ without a match in A/ (e.g. {only_b[0]})")
        raise Img2ImgError(f"{split_dir}: A and B file names do not match: " + "; ".join(parts))
    return [(items_a[k], items_b[k]) for k in sorted(items_a)]


def _check_side_by_side(pairs: list[tuple[ImageItem, None]]) -> None:
    """Refuse a folder none of whose images splits into A|B halves (not this layout at all); a
    single odd-width image is skipped, and named, when training meets it."""
    odd = None
    for item, _ in pairs:
        try:
            width, _height = image_size(item.path)
        except ImageReadError:
            continue  # a broken file is skipped and counted when training meets it
        if width % 2 == 0:
            return
        odd = odd or (item.path, width)
    if odd:
        raise Img2ImgError(f"{odd[0]}: width {odd[1]} is odd, so it cannot be split into A|B halves (and no image "
                           "of this folder can)")


def _train_split(cfg: RunConfig, transform) -> PairedDataset:
    data = cfg.data
    root = require_dir(Path(data.root), "data")
    return PairedDataset(split_or_root(root), transform, direction=data.direction, seed=cfg.train.seed,
                         formats=formats_of(cfg), slice_axis=data.slice_axis, max_size=data.max_dataset_size)


def _val_split(cfg: RunConfig, transform, val_dir: Path | None) -> PairedDataset | None:
    split = val_dir or val_split_dir(Path(cfg.data.root))
    return PairedDataset(split, transform, direction=cfg.data.direction, formats=formats_of(cfg),
                         slice_axis=cfg.data.slice_axis) if split else None


# DIR/train (or DIR itself) and DIR/val or DIR/test: A|B files or A/ + B/ folders.
PAIRED = Layout(_train_split, _val_split)
