"""Albumentations pipelines shared by paired and unpaired data."""
from __future__ import annotations

import functools

import albumentations as A
import cv2
import numpy as np
from PIL import Image


def pil_bicubic_resize(size: int) -> A.Lambda:
    """Resize every image target to size x size with PIL's bicubic filter.

    PIL widens the bicubic kernel when it downscales (antialiasing), as the canonical pix2pix and
    CycleGAN data path does through torchvision; cv2's bicubic does not, and its area filter is
    blurrier. Test images that users resize with PIL then look like the training images.
    """
    # A partial of a module-level function, so that data workers started by spawn can unpickle it.
    return A.Lambda(image=functools.partial(_pil_bicubic, size=size), name=f"pil_bicubic_resize_{size}")


def _pil_bicubic(image: np.ndarray, size: int, **_) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def resize_step(size: int, resize: str) -> A.BasicTransform:
    """`resize`: "bicubic" (PIL's, the default) or "area" (cv2's, kept so that runs started before
    checkpoint format 3 resume on the images they trained on)."""
    if resize == "area":
        return A.Resize(size, size, interpolation=cv2.INTER_AREA)
    if resize == "bicubic":
        return pil_bicubic_resize(size)
    raise ValueError(f"unknown resize filter {resize!r}: bicubic or area")


def train_transform(load_size: int, size: int, flip: bool, resize: str = "bicubic") -> A.Compose:
    """Resize to load_size, random crop to size, optional horizontal flip.

    `image_b` is an additional target, so paired images always get identical geometry.
    """
    if size > load_size:
        raise ValueError(f"crop size {size} is larger than load size {load_size}")
    steps = [resize_step(load_size, resize), A.RandomCrop(size, size)]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps, additional_targets={"image_b": "image"})


def eval_transform(size: int, resize: str = "bicubic") -> A.Compose:
    return A.Compose([resize_step(size, resize)], additional_targets={"image_b": "image"})


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one sample: independent of worker count and of where a run resumed."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
