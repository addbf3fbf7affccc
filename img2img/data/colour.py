"""Colourisation data: any folder of colour photos. Each photo gives its Lab lightness L (the
input) and its colour ab (the target), after the run's geometry (crops, flips)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from ..errors import Img2ImgError
from ..pixel_format import PixelFormat
from .domain import DomainData, seeded_subset
from .folders import require_images
from .images import image_shape, list_items, read_item
from .transforms import sample_seed

# What L and ab span in CIE Lab (cv2's float conversion): L in [0, 100], a and b within about
# +-110 for sRGB colours. Their ranges map onto the networks' [-1, 1].
L_RANGE, AB_RANGE = (0.0, 100.0), (-110.0, 110.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 sRGB -> H x W x 3 float32 Lab."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """H x W x 3 float32 Lab -> H x W x 3 uint8 sRGB (colours outside sRGB clipped)."""
    rgb = cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# CIE Lab -> XYZ (D65 white, as cv2) -> linear sRGB, unclipped: cv2's own conversion clips to
# [0, 1], so it cannot say which colours lie outside sRGB.
_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)
_XYZ_TO_RGB = np.array([[3.240479, -1.53715, -0.498535], [-0.969256, 1.875991, 0.041556],
                        [0.055648, -0.204043, 1.057311]], np.float32)


def _linear_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[:, 0] + 16) / 116
    f = np.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], axis=1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    return xyz @ _XYZ_TO_RGB.T


def lab_to_rgb_keeping_lightness(lab: np.ndarray, steps: int = 12) -> np.ndarray:
    """As `lab_to_rgb`, but a colour outside sRGB keeps its lightness: its chroma (ab) is scaled
    down, by bisection, until the colour fits, instead of each RGB channel being clipped."""
    flat = np.ascontiguousarray(lab, dtype=np.float32).reshape(-1, 3).copy()
    margin = 1e-4

    def fits(values: np.ndarray) -> np.ndarray:
        rgb = _linear_rgb(values)
        return ((rgb >= -margin) & (rgb <= 1 + margin)).all(axis=1)

    outside = np.flatnonzero(~fits(flat))
    if len(outside):
        low, high = np.zeros(len(outside), np.float32), np.ones(len(outside), np.float32)
        for _ in range(steps):
            middle = (low + high) / 2
            trial = flat[outside].copy()
            trial[:, 1:] *= middle[:, None]
            inside = fits(trial)
            low, high = np.where(inside, middle, low), np.where(inside, high, middle)
        flat[outside, 1:] *= low[:, None]
    return lab_to_rgb(flat.reshape(lab.shape))


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """8-bit grey or RGB(A) pixels as RGB."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[..., :3]


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
