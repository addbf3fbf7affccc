"""CycleGAN data: two unrelated image folders, A and B."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import ImageReadError
from .folders import require_images
from .images import load_rgb, to_tensor
from .transforms import sample_seed


class UnpairedDataset(Dataset):
    """Each A image with a random B image (or the B at the same position with `serial=True`).

    An epoch is max(|A|, |B|) samples. A and B get independently drawn augmentations.
    """

    def __init__(
        self,
        dir_a: Path | str,
        dir_b: Path | str,
        transform,
        direction: str = "AtoB",
        serial: bool = False,
        seed: int = 0,
    ) -> None:
        files_a = require_images(Path(dir_a), "A")
        files_b = require_images(Path(dir_b), "B")
        self.files_a, self.files_b = (files_b, files_a) if direction == "BtoA" else (files_a, files_b)
        self.transform = transform
        self.serial = serial
        self.seed = seed

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index))
        path_a = self.files_a[index % len(self.files_a)]
        path_b = self.files_b[index % len(self.files_b) if self.serial else int(rng.integers(len(self.files_b)))]
        try:
            a, b = np.asarray(load_rgb(path_a)), np.asarray(load_rgb(path_b))
        except ImageReadError as e:
            return {"error": str(e)}
        seed_a, seed_b = (int(s) for s in rng.integers(2**31, size=2))
        self.transform.set_random_seed(seed_a)
        a = self.transform(image=a, image_b=a)["image"]
        self.transform.set_random_seed(seed_b)
        b = self.transform(image=b, image_b=b)["image"]
        return {"A": to_tensor(a), "B": to_tensor(b), "path": str(path_a)}
