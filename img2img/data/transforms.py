"""Albumentations pipelines shared by paired and unpaired data."""
from __future__ import annotations

import albumentations as A
import numpy as np
from PIL import Image


def pil_bicubic_resize(size: int) -> A.Lambda:
    """Resize every image target to size x size with PIL's bicubic filter.

    PIL widens the bicubic kernel when it downscales (antialiasing), as the canonical pix2pix and
    CycleGAN data path does through torchvision; cv2's bicubic does not, and its area filter is
    blurrier. Test images that users resize with PIL then look like the training images.
    """
    def resize(image: np.ndarray, **_) -> np.ndarray:
        if image.shape[:2] == (size, size):
            return image
        return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))

    return A.Lambda(image=resize, name=f"pil_bicubic_resize_{size}")


def train_transform(load_size: int, size: int, flip: bool) -> A.Compose:
    """Resize to load_size, random crop to size, optional horizontal flip.

    `image_b` is an additional target, so paired images always get identical geometry.
    """
    if size > load_size:
        raise ValueError(f"crop size {size} is larger than load size {load_size}")
    steps = [pil_bicubic_resize(load_size), A.RandomCrop(size, size)]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps, additional_targets={"image_b": "image"})


def eval_transform(size: int) -> A.Compose:
    return A.Compose([pil_bicubic_resize(size)], additional_targets={"image_b": "image"})


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one sample: independent of worker count and of where a run resumed."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
