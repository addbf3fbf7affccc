"""Finding the splits of a dataset folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
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


@dataclass(frozen=True)
class DomainFiles:
    """One domain's images in a split, as files (no dataset, no transforms): whole files, or the
    `half` ("left" or "right") of each A|B side-by-side file."""

    files: tuple[Path, ...]
    half: str | None = None


def validation_files(cfg: RunConfig, kind: str, domain: str) -> DomainFiles:
    """The validation split's images of the model's domain `domain` ("A": its input, "B": its
    output) in layout `kind`, listed with io's file listing: what int8 calibrates on and model
    cards count. Empty where the split is not here."""
    data = cfg.data
    root = Path(data.root)
    # --direction BtoA makes the files' B side the model's A.
    side = "AB"[("AB".index(domain) + (data.direction == "BtoA")) % 2] if kind != "colour" else domain
    if kind == "unpaired":
        base = Path(data.val_dir) if data.val_dir else root
        for prefix in ("test", "val"):
            if (base / f"{prefix}A").is_dir() and (base / f"{prefix}B").is_dir():
                return DomainFiles(tuple(list_images(base / f"{prefix}{side}")))
        return DomainFiles(())
    split = Path(data.val_dir) if data.val_dir else val_split_dir(root)
    if split is None or not split.is_dir():
        return DomainFiles(())
    if kind == "paired" and (split / "A").is_dir() and (split / "B").is_dir():
        return DomainFiles(tuple(list_images(split / side)))
    return DomainFiles(tuple(list_images(split)), ("left" if side == "A" else "right") if kind == "paired" else None)
