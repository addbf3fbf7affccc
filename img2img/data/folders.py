"""Finding the splits of a dataset folder."""
from __future__ import annotations

from pathlib import Path

from ..errors import Img2ImgError
from ..io.readers import list_images


def require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise Img2ImgError(f"{path}: {what} folder does not exist")
    if not path.is_dir():
        raise Img2ImgError(f"{path}: {what} is not a folder")
    return path


def require_images(folder: Path, what: str) -> list[Path]:
    files = list_images(require_dir(folder, what))
    if not files:
        raise Img2ImgError(f"{folder}: {what} folder holds no images (.jpg, .png, ...)")
    return files


def val_split_dir(root: Path, names: tuple[str, ...] = ("val", "test")) -> Path | None:
    """The first of `names` that exists under root, or None."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None
