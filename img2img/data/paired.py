"""pix2pix data: each sample is an (A, B) pair with identical augmentation geometry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import Img2ImgError, ImageReadError
from .folders import require_dir, require_images
from .images import image_size, load_rgb, to_tensor
from .transforms import sample_seed


class PairedDataset(Dataset):
    """Paired images from one split folder, in either of the two pix2pix layouts:

    - `split/*.jpg`, each file A and B side by side (A left);
    - `split/A/*` and `split/B/*` with matching file names.

    Items are looked up by `(epoch, index)`, which seeds the augmentation, so a sample is the
    same whichever worker loads it and whenever the run was resumed.
    """

    def __init__(self, split_dir: Path | str, transform, direction: str = "AtoB", seed: int = 0) -> None:
        self.split_dir = require_dir(Path(split_dir), "data")
        self.transform = transform
        self.swap = direction == "BtoA"
        self.seed = seed
        if (self.split_dir / "A").is_dir() or (self.split_dir / "B").is_dir():
            self.pairs = _folder_pairs(self.split_dir)
        else:
            self.pairs = [(p, None) for p in require_images(self.split_dir, "data")]
            _check_side_by_side(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path_a, path_b = self.pairs[index]
        if path_b is None:
            ab = np.asarray(load_rgb(path_a))
            half = ab.shape[1] // 2
            a, b = ab[:, :half], ab[:, half:]
        else:
            a, b = np.asarray(load_rgb(path_a)), np.asarray(load_rgb(path_b))
            if a.shape != b.shape:
                raise ImageReadError(path_b, f"size {b.shape[1]}x{b.shape[0]} differs from its A image {path_a.name}")
        return (b, a) if self.swap else (a, b)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path = str(self.pairs[index][0])
        try:
            a, b = self.load_pair(index)
        except ImageReadError as e:
            return {"error": str(e)}
        self.transform.set_random_seed(sample_seed(self.seed, epoch, index))
        out = self.transform(image=a, image_b=b)
        return {"A": to_tensor(out["image"]), "B": to_tensor(out["image_b"]), "path": path}


def _folder_pairs(split_dir: Path) -> list[tuple[Path, Path]]:
    files_a = {p.stem: p for p in require_images(split_dir / "A", "A")}
    files_b = {p.stem: p for p in require_images(split_dir / "B", "B")}
    only_a, only_b = sorted(files_a.keys() - files_b), sorted(files_b.keys() - files_a)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} in A/ without a match in B/ (e.g. {only_a[0]})")
        if only_b:
            parts.append(f"{len(only_b)} in B/ without a match in A/ (e.g. {only_b[0]})")
        raise Img2ImgError(f"{split_dir}: A and B file names do not match: " + "; ".join(parts))
    return [(files_a[k], files_b[k]) for k in sorted(files_a)]


def _check_side_by_side(pairs: list[tuple[Path, None]]) -> None:
    for path, _ in pairs:
        try:
            width, _height = image_size(path)
        except ImageReadError:
            continue  # a broken file is skipped and counted when training meets it
        if width % 2:
            raise Img2ImgError(f"{path}: width {width} is odd, so it cannot be split into A|B halves")
