"""Albumentations pipelines shared by paired and unpaired data, for every `--preprocess` mode:

- resize_and_crop (default): resize to the load size, then a random crop of --size;
- crop: a random crop of --size from the image as it is;
- scale_width: width to the load width, the height scaled to keep the aspect;
- scale_width_and_crop: the same, then a random crop of --size;
- none: the image as it is.

Where no crop fixes the size (scale_width, none), images are padded at the bottom and right to
the generator's size multiple, as translation pads them. Validation images get the same
geometry without randomness: the crops are centred, and resize_and_crop resizes to --size.

Pixels keep their dtype and channel count throughout (8-bit RGB, 16-bit, float, 13 bands).
"""
from __future__ import annotations

import functools

import albumentations as A
import cv2
import numpy as np

from ..config import DataConfig
from ..io.pixel_format import pad_pixels, resize_pixels


def _resize_to(image: np.ndarray, width: int, height: int, **_) -> np.ndarray:
    return resize_pixels(image, width, height)


def _scale_width(image: np.ndarray, width: int, min_height: int = 1, **_) -> np.ndarray:
    h, w = image.shape[:2]
    return resize_pixels(image, width, max(min_height, round(h * width / w)))


def _pad(image: np.ndarray, multiple: int, **_) -> np.ndarray:
    return pad_pixels(image, multiple)


def _step(function, name: str, **kwargs) -> A.Lambda:
    # A partial of a module-level function, so that data workers started by spawn can unpickle it.
    return A.Lambda(image=functools.partial(function, **kwargs), name=name)


def resize_step(width: int, height: int, resize: str = "bicubic") -> A.BasicTransform:
    """`resize`: "bicubic" (PIL's, the default) or "area" (cv2's, kept so that runs started before
    checkpoint format 3 resume on the images they trained on)."""
    if resize == "area":
        return A.Resize(height, width, interpolation=cv2.INTER_AREA)
    if resize == "bicubic":
        return _step(_resize_to, f"pil_bicubic_resize_{width}x{height}", width=width, height=height)
    raise ValueError(f"unknown resize filter {resize!r}: bicubic or area")


def _geometry(data: DataConfig, multiple: int, train: bool) -> list:
    (w, h), (lw, lh) = data.crop_size, data.load_frame
    crop = A.RandomCrop(h, w) if train else A.CenterCrop(h, w)
    mode = data.preprocess
    if mode == "resize_and_crop":
        return [resize_step(lw, lh, data.resize), crop] if train else [resize_step(w, h, data.resize)]
    if mode == "crop":
        return [crop]
    if mode == "scale_width":
        return [_step(_scale_width, f"scale_width_{lw}", width=lw), _step(_pad, f"pad_{multiple}", multiple=multiple)]
    if mode == "scale_width_and_crop":
        return [_step(_scale_width, f"scale_width_{lw}", width=lw, min_height=h), crop]
    if mode == "none":
        return [_step(_pad, f"pad_{multiple}", multiple=multiple)]
    raise ValueError(f"unknown preprocess mode {mode!r}")


def train_transform(data: DataConfig, multiple: int = 1) -> A.Compose:
    """The training geometry of `data.preprocess`, then an optional horizontal flip. `image_b` is an
    additional target, so paired images always get identical geometry. `multiple`: the
    generator's, to which uncropped images are padded."""
    steps = _geometry(data, multiple, train=True)
    if data.flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps, additional_targets={"image_b": "image"})


def eval_transform(data: DataConfig, multiple: int = 1) -> A.Compose:
    return A.Compose(_geometry(data, multiple, train=False), additional_targets={"image_b": "image"})


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one sample: independent of worker count and of where a run resumed."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
