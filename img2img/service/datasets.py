"""Training data for the app: folders under the server's data root, and zips that visitors upload.

A name is resolved inside the root and never leads out of it, through `..` or a link. An upload
is unpacked into a hidden folder beside its destination, checked whole (every member inside the
folder, no links, no zip bomb, every image decodes, one layout), and only then renamed into
place; a refused upload leaves nothing behind."""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..cancellation import check_stop
from ..data.inspect import IGNORED_FOLDERS, IGNORED_NAMES, DataReport, inspect_dataset
from ..errors import ImageReadError, Img2ImgError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.readers import image_shape, is_image_file, is_volume_file, read_image

UPLOADS = "uploads"


@dataclass(frozen=True)
class UploadLimits:
    """What one zip may cost. `max_ratio`: its unpacked size over its packed size (a zip bomb
    packs gigabytes of zeros at ratios of a thousand; photos pack at about 1, raw 16-bit scans at
    a few). `max_unpacked_mb`: everything it unpacks to."""

    max_upload_mb: int = 200
    max_ratio: float = 100.0
    max_unpacked_mb: int = 4096
    max_members: int = 100_000


class DataRoot:
    """The folder (`--data-root`) under which training data may be chosen, and uploads land."""

    def __init__(self, root: Path | str, limits: Limits = DEFAULT_LIMITS,
                 upload_limits: UploadLimits = UploadLimits()) -> None:
        self.root = Path(root).resolve()
        self.limits = limits
        self.upload_limits = upload_limits

    def datasets(self) -> list[str]:
        """Names of the folders a visitor may choose: each folder in the root, and each upload."""
        if not self.root.is_dir():
            return []
        names = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir() or not self._inside(folder):
                continue
            if folder.name == UPLOADS:
                names += [f"{UPLOADS}/{f.name}" for f in sorted(folder.iterdir())
                          if f.is_dir() and not f.name.startswith(".") and self._inside(f)]
            else:
                names.append(folder.name)
        return names

    def resolve(self, name: str) -> Path:
        """The folder `name` under the root; refused in one line when it leads out of it."""
        if not name or not name.strip():
            raise Img2ImgError("choose a data folder first")
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if PurePosixPath(name).is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise Img2ImgError(f"{name}: not a folder under the data root (give a name inside it)")
        path = self.root.joinpath(*parts)
        if not self._inside(path):
            raise Img2ImgError(f"{name}: leads out of the data root (a link); refused")
        if not path.is_dir():
            raise Img2ImgError(f"{name}: no such folder under the data root")
        outside = self._links_out(path)
        if outside:
            raise Img2ImgError(f"{name}: {outside.relative_to(self.root)} is a link out of the data root; refused")
        return path

    def inspect(self, name: str) -> DataReport:
        return inspect_dataset(self.resolve(name))

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    def _links_out(self, folder: Path) -> Path | None:
        """The first link under `folder` that resolves outside the root."""
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink() and not self._inside(path):
                    return path
        return None

    def unpack(self, upload: Path | str, name: str | None = None) -> tuple[str, DataReport]:
        """Unpack zip `upload` into the root's uploads/ folder: (its name there, its report). A
        refused upload is one line and leaves nothing behind."""
        upload = Path(upload)
        shown = name or upload.name
        limits = self.upload_limits
        if not upload.is_file():
            raise Img2ImgError(f"{shown}: no such file")
        size = upload.stat().st_size
        if size > limits.max_upload_mb * 2**20:
            raise Img2ImgError(f"{shown}: {size / 2**20:.0f} MB is more than the {limits.max_upload_mb} MB an upload "
                               "may be (--max-upload-mb)")
        if not zipfile.is_zipfile(upload):
            raise Img2ImgError(f"{shown}: not a zip file; upload your pictures as a .zip")
        uploads = self.root / UPLOADS
        uploads.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=uploads))
        try:
            with zipfile.ZipFile(upload) as archive:
                members = _checked_members(archive, shown, size, limits)
                for info, parts in members:
                    check_stop()  # a request's time limit or cancel: between members
                    _extract(archive, info, partial.joinpath(*parts), shown)
            dataset = _single_top_folder(partial)
            _check_images(dataset, shown, self.limits)
            inspect_dataset(dataset)  # one layout, some images: else refused here
            final = _free_name(uploads, _safe_stem(name or upload.name))
            dataset.rename(final)
        except Img2ImgError as e:
            raise Img2ImgError(str(e).replace(str(partial) + "/", "").replace(str(partial), shown)) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise Img2ImgError(f"{shown}: a damaged zip ({type(e).__name__}: {str(e)[:120]})") from None
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return f"{UPLOADS}/{final.name}", inspect_dataset(final)


def _checked_members(archive: zipfile.ZipFile, shown: str, packed: int,
                     limits: UploadLimits) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The members to unpack, as path parts; any member that is not a plain file or folder inside
    the zip's own folder refuses the whole upload."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise Img2ImgError(f"{shown}: {len(infos):,} members, more than {limits.max_members:,}")
    unpacked = 0
    members = []
    for info in infos:
        name = info.filename
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or name.startswith(("/", "\\")):
            raise Img2ImgError(f"{shown}: member {name} has an absolute path; refused")
        if ".." in path.parts:
            raise Img2ImgError(f"{shown}: member {name} escapes the folder (..); refused")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise Img2ImgError(f"{shown}: member {name} is a link; refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise Img2ImgError(f"{shown}: member {name} is not a plain file; refused")
        if info.flag_bits & 0x1:
            raise Img2ImgError(f"{shown}: member {name} is encrypted; upload an unencrypted zip")
        if info.is_dir() or path.name in IGNORED_NAMES or any(p in IGNORED_FOLDERS for p in path.parts):
            continue
        if info.file_size > 2**20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise Img2ImgError(f"{shown}: member {name} unpacks {info.file_size / max(info.compress_size, 1):.0f} times "
                               f"its packed size (more than {limits.max_ratio:g}): refused as a zip bomb")
        unpacked += info.file_size
        members.append((info, path.parts))
    if unpacked > limits.max_unpacked_mb * 2**20:
        raise Img2ImgError(f"{shown}: unpacks to {unpacked / 2**20:.0f} MB, more than {limits.max_unpacked_mb} MB")
    if unpacked > 2**20 and unpacked > limits.max_ratio * max(packed, 1):
        raise Img2ImgError(f"{shown}: unpacks {unpacked / packed:.0f} times its size (more than {limits.max_ratio:g}): "
                           "refused as a zip bomb")
    if not any(is_image_file(Path(parts[-1])) for _, parts in members):
        raise Img2ImgError(f"{shown}: holds no images (.jpg, .png, .tif, ...)")
    return members


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, shown: str) -> None:
    """One member, copied with a count: a member that inflates past its declared size is refused."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with archive.open(info) as source, open(target, "wb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > info.file_size:
                raise Img2ImgError(f"{shown}: member {info.filename} unpacks past its declared size; refused")
            out.write(chunk)


def _single_top_folder(folder: Path) -> Path:
    """The dataset inside an unpacked zip: down through folders that hold only one folder
    (`outer/inner/train/...`), to the first that holds more, or a split."""
    while True:
        entries = [p for p in folder.iterdir() if p.name not in IGNORED_NAMES and p.name not in IGNORED_FOLDERS]
        if not (len(entries) == 1 and entries[0].is_dir() and entries[0].name not in ("train", "trainA", "A")):
            return folder
        folder = entries[0]


def _check_images(folder: Path, shown: str, limits: Limits) -> None:
    """Every image decodes, within the server's limits (checked from each header first)."""
    for path in sorted(folder.rglob("*")):
        check_stop()
        if not path.is_file() or not is_image_file(path):
            continue
        try:
            if is_volume_file(path):
                image_shape(path)
            else:
                read_image(path, limits=limits)
        except ImageReadError as e:
            raise Img2ImgError(f"{shown}: {path.relative_to(folder)} does not decode: {e.reason}") from None


def _safe_stem(name: str) -> str:
    stem = Path(name).name
    stem = stem[:-4] if stem.lower().endswith(".zip") else stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "data"


def _free_name(folder: Path, stem: str) -> Path:
    path, n = folder / stem, 2
    while path.exists():
        path, n = folder / f"{stem}-{n}", n + 1
    return path
