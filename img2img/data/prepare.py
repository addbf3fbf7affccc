"""Datasets: download the standard sets, make edges->photo pairs from photos, combine A/B folders."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..download import download
from ..errors import Img2ImgError
from ..files import atomic_write
from ..io.pixel_format import resize_pixels
from ..io.readers import ImageReadError, file_stem, is_image_file, list_images, load_rgb, read_image
from ..io.writers import png_holds, write_image
from ..log import logger
from ..registry import Registry

PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
COMPLETE_MARKER = ".img2img-complete"


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset. `name` is what users type; CycleGAN's copies of maps and facades
    are `cyclegan/maps` and `cyclegan/facades`, the plain names being pix2pix's."""

    name: str
    kind: str  # "pix2pix" (train/val/test of A|B images) or "cyclegan" (trainA/trainB/testA/testB)
    url: str | None
    note: str = ""

    @property
    def folders(self) -> tuple[str, ...]:
        return ("train",) if self.kind == "pix2pix" else ("trainA", "trainB")


def _registry() -> dict[str, DatasetSource]:
    sources = [DatasetSource(n, "pix2pix", PIX2PIX_URL.format(name=n))
               for n in ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")]
    for n in ("horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
              "ukiyoe2photo", "vangogh2photo", "maps", "facades", "iphone2dslr_flower"):
        name = f"cyclegan/{n}" if n in ("maps", "facades") else n
        sources.append(DatasetSource(name, "cyclegan", CYCLEGAN_URL.format(name=n)))
    sources.append(DatasetSource(
        "cityscapes", "pix2pix", None,
        "Cityscapes may not be redistributed: register at https://www.cityscapes-dataset.com, download "
        "gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, and pair photos and label maps with "
        "`img2img datasets combine`."))
    return {s.name: s for s in sources}


DATASETS = _registry()


def get_source(name: str) -> DatasetSource:
    try:
        return DATASETS[name]
    except KeyError:
        raise Img2ImgError(f"unknown dataset {name!r}; `img2img datasets list` shows the names") from None


def download_dataset(name: str, root: Path | str = "datasets", url: str | None = None) -> Path:
    """Download and extract `name` into ROOT/NAME; does nothing if that is already complete."""
    source = get_source(name)
    target = Path(root) / name
    if (target / COMPLETE_MARKER).is_file():
        logger.info(f"{name}: already in {target}")
        return target
    url = url or source.url
    if url is None:
        raise Img2ImgError(f"{name}: {source.note}")
    archive_name = PurePosixPath(url.split("?")[0]).name
    archive = download(url, Path(root) / ".downloads" / archive_name)
    staging = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        extract_archive(archive, staging)
        content = _single_top_folder(staging)
        missing = [f for f in source.folders if not (content / f).is_dir()]
        if missing:
            raise Img2ImgError(f"{archive}: expected folders {', '.join(missing)} in the archive; is this {name}?")
        if target.exists():
            shutil.rmtree(target)
        os.replace(content, target)
        (target / COMPLETE_MARKER).write_text(url + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()
    logger.info(f"{name}: extracted to {target}")
    return target


def _single_top_folder(folder: Path) -> Path:
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract a .tar(.gz) or .zip into `dest`, refusing the whole archive if any member would
    land outside it (absolute paths, '..', links pointing out); nothing is written then."""
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    else:
        raise Img2ImgError(f"{archive}: not a tar or zip archive")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:  # check everything before writing anything
            if _is_absolute(member.name):
                raise Img2ImgError(f"{archive}: refused, member {member.name!r} has an absolute path")
            try:
                tarfile.data_filter(member, str(dest))
            except tarfile.FilterError as e:
                raise Img2ImgError(f"{archive}: refused, member {member.name!r} is unsafe ({e})") from None
        tar.extractall(dest, members=members, filter="data")


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")


def _extract_zip(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            name = info.filename
            target = (root / name).resolve()
            unsafe = (
                _is_absolute(name) or (target != root and root not in target.parents)
                or stat.S_ISLNK(info.external_attr >> 16)
            )
            if unsafe:
                raise Img2ImgError(f"{archive}: refused, member {name!r} would be written outside {dest} or is a link")
        zf.extractall(dest, members=infos)


# ---- edges -----------------------------------------------------------------------------------


def canny_edges(rgb: np.ndarray, min_component: int = 12) -> np.ndarray:
    """Thin black edge lines on white, in the style of edges2shoes.

    Canny thresholds come from the image's median intensity; a light blur first removes noise,
    and connected edge fragments smaller than `min_component` pixels are dropped.
    """
    grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (3, 3), 0)
    median = float(np.median(grey))
    lower, upper = int(max(0, 0.67 * median)), int(min(255, 1.33 * median))
    edges = cv2.Canny(grey, lower, max(upper, lower + 1))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_component
    return np.where(keep[labels], 0, 255).astype(np.uint8)


# New detectors (e.g. a learned HED) register here: RGB uint8 HxWx3 -> uint8 HxW, lines dark on white.
EDGE_METHODS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("edge method", {"canny": canny_edges})


def resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to `size`, then centre-crop to size x size."""
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def is_val(name: str, val_fraction: float) -> bool:
    """Deterministic split by file name: stable across runs and when photos are added."""
    h = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big")
    return h / 2**64 < val_fraction


@dataclass
class FolderReport:
    written: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self, what: str) -> str:
        return "\n".join([f"{what}: {self.written} written, {len(self.problems)} skipped"] + self.problems)


def make_edges_dataset(photos: Path | str, output: Path | str, size: int = 256, val_fraction: float = 0.1,
                       method: str = "canny") -> FolderReport:
    """OUTPUT/{train,val}/NAME.png with A = edges (left) and B = the photo (right)."""
    edges_of = EDGE_METHODS[method]
    photos, output = Path(photos), Path(output)
    if not photos.is_dir():
        raise Img2ImgError(f"{photos}: photo folder does not exist")
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    report = FolderReport()
    for path in tqdm(files, desc="edges", unit="img"):
        if not is_image_file(path):
            report.problems.append(f"skipped {path}: not an image file")
            continue
        try:
            photo = resize_and_crop(load_rgb(path), size)
        except ImageReadError as e:
            report.problems.append(f"skipped {e}")
            continue
        edges = Image.fromarray(edges_of(np.asarray(photo))).convert("RGB")
        pair = Image.new("RGB", (2 * size, size))
        pair.paste(edges, (0, 0))
        pair.paste(photo, (size, 0))
        rel = path.relative_to(photos).with_suffix(".png")
        name = "__".join(rel.parts)  # flatten subfolders without collisions
        split = "val" if is_val(name, val_fraction) else "train"
        atomic_write(output / split / name, lambda f: pair.save(f, format="PNG"))
        report.written += 1
    return report


def combine_folders(dir_a: Path | str, dir_b: Path | str, output: Path | str, resize_b: bool = False) -> FolderReport:
    """OUTPUT/NAME.png = A|B for each file name (without extension) found in both folders, at the
    images' own dtype and channel count (16-bit pairs stay 16-bit; a pair PNG cannot hold goes
    to NAME.tif)."""
    files_a = {file_stem(p): p for p in list_images(Path(dir_a))}
    files_b = {file_stem(p): p for p in list_images(Path(dir_b))}
    if not files_a or not files_b:
        raise Img2ImgError(f"{dir_a if not files_a else dir_b}: no images found")
    report = FolderReport()
    for stem in sorted(files_a.keys() - files_b.keys()):
        report.problems.append(f"unmatched {files_a[stem]}: no {stem}.* in {dir_b}")
    for stem in sorted(files_b.keys() - files_a.keys()):
        report.problems.append(f"unmatched {files_b[stem]}: no {stem}.* in {dir_a}")
    for stem in tqdm(sorted(files_a.keys() & files_b.keys()), desc="combine", unit="pair"):
        try:
            a, b = read_image(files_a[stem]).array, read_image(files_b[stem]).array
        except ImageReadError as e:
            report.problems.append(f"skipped {e}")
            continue
        if a.dtype == b.dtype == np.uint8 and {a.shape[2], b.shape[2]} == {1, 3}:
            a, b = (np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x for x in (a, b))  # 8-bit grey beside RGB
        if (a.dtype, a.shape[2]) != (b.dtype, b.shape[2]):
            report.problems.append(f"skipped {files_b[stem]}: {b.shape[2]}-channel {b.dtype} beside A's {a.shape[2]}-"
                                   f"channel {a.dtype}; keep such pairs in train/A and train/B folders instead")
            continue
        if b.shape[:2] != a.shape[:2]:
            if not resize_b:
                report.problems.append(f"skipped {files_b[stem]}: size {b.shape[1]}x{b.shape[0]} differs from A's "
                                       f"{a.shape[1]}x{a.shape[0]} (use --resize-b)")
                continue
            b = resize_pixels(b, a.shape[1], a.shape[0])
        pair = np.concatenate([a, b], axis=1)
        suffix = ".png" if png_holds(pair.dtype.name, pair.shape[2]) else ".tif"
        write_image(Path(output) / f"{stem}{suffix}", pair)
        report.written += 1
    return report
