"""Writing pixels back without loss, atomically: 8-bit and 16-bit PNG, TIFF at any dtype and
channel count, float TIFF and .npy, and NIfTI volumes with their input's affine and header.

`output_suffix` picks what an input is written as: `same` keeps its format where that format
can hold the output (a DICOM becomes a TIFF; a PNG that cannot hold the output's dtype or
channels becomes a TIFF), `png`/`jpg`/`tif`/`npy` ask for one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import Img2ImgError
from ..files import atomic_path, atomic_write
from .readers import DICOM_EXTENSIONS, TIFF_EXTENSIONS, file_stem, is_volume_file

FORMATS = ("auto", "same", "png", "jpg", "tif", "npy")
_SUFFIXES = {"png": ".png", "jpg": ".jpg", "tif": ".tif", "npy": ".npy"}


def png_holds(dtype: str, channels: int) -> bool:
    return dtype in ("uint8", "uint16") and channels in (1, 3, 4)


def jpeg_holds(dtype: str, channels: int) -> bool:
    return dtype == "uint8" and channels in (1, 3)


def output_suffix(source: Path, fmt: str, dtype: str, channels: int) -> str:
    """The suffix an output of `dtype` and `channels` is written with, for input `source`.
    `auto`: PNG for 8-bit outputs of 8-bit inputs (as before formats existed), else `same`."""
    suffix = ".nii.gz" if source.name.lower().endswith(".nii.gz") else source.suffix.lower()
    if fmt == "auto":
        fmt = "png" if dtype == "uint8" and suffix in (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm") \
            else "same"
    if fmt == "same":
        if is_volume_file(source):
            return suffix
        if suffix in DICOM_EXTENSIONS:
            return ".tif"
        if suffix in TIFF_EXTENSIONS or suffix == ".npy":
            return suffix
        if suffix in (".jpg", ".jpeg") and jpeg_holds(dtype, channels):
            return suffix
        return ".png" if png_holds(dtype, channels) else ".tif"
    if fmt not in _SUFFIXES:
        raise Img2ImgError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if fmt == "png" and not png_holds(dtype, channels):
        raise Img2ImgError(f"--format png cannot hold {channels}-channel {dtype} outputs without loss; "
                           "use --format tif or same")
    if fmt == "jpg" and not jpeg_holds(dtype, channels):
        raise Img2ImgError(f"--format jpg cannot hold {channels}-channel {dtype} outputs; use --format png, tif or same")
    return _SUFFIXES[fmt]


def with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(file_stem(path) + suffix)


class ImageWriter:
    """A file format's writer: `accepts` a path and the pixels' dtype, `write`s them atomically,
    refusing in one line what the format cannot hold."""

    def accepts(self, suffix: str, dtype: str) -> bool:
        raise NotImplementedError

    def write(self, path: Path, pixels: np.ndarray, quality: int) -> None:
        raise NotImplementedError


class TiffWriter(ImageWriter):
    """Any dtype and channel count (tifffile); RGB photometric for 8/16-bit colour."""

    def accepts(self, suffix, dtype):
        return suffix in TIFF_EXTENSIONS

    def write(self, path, pixels, quality):
        import tifffile

        dtype, channels = pixels.dtype.name, pixels.shape[2]
        photometric = "rgb" if channels == 3 and dtype in ("uint8", "uint16") else "minisblack"
        data = pixels[..., 0] if channels == 1 else pixels
        with atomic_path(path, suffix=path.suffix.lower()) as tmp:  # tifffile writes by file name
            tifffile.imwrite(tmp, data, photometric=photometric, planarconfig="contig" if channels > 1 else None)


class NpyWriter(ImageWriter):
    def accepts(self, suffix, dtype):
        return suffix == ".npy"

    def write(self, path, pixels, quality):
        atomic_write(path, lambda f: np.save(f, pixels[..., 0] if pixels.shape[2] == 1 else pixels))


class PNG16Writer(ImageWriter):
    """16-bit PNG (OpenCV: PIL writes 16-bit grey only)."""

    def accepts(self, suffix, dtype):
        return suffix == ".png" and dtype == "uint16"

    def write(self, path, pixels, quality):
        import cv2

        dtype, channels = pixels.dtype.name, pixels.shape[2]
        if not png_holds(dtype, channels):
            raise Img2ImgError(f"{path}: PNG cannot hold {channels}-channel {dtype} pixels")
        bgr = pixels if channels == 1 else pixels[..., [2, 1, 0, 3][:channels]]
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
        if not ok:
            raise Img2ImgError(f"{path}: OpenCV could not encode this PNG")
        atomic_write(path, lambda f: f.write(encoded.tobytes()))


class PILWriter(ImageWriter):
    """8-bit grey, RGB and RGBA in any format PIL writes (PNG, JPEG at `quality`, ...)."""

    def accepts(self, suffix, dtype):
        return True

    def write(self, path, pixels, quality):
        suffix, dtype, channels = path.suffix.lower(), pixels.dtype.name, pixels.shape[2]
        fmt = Image.registered_extensions().get(suffix)
        if fmt is None:
            raise Img2ImgError(f"{path}: cannot write images with the extension {suffix!r}")
        if dtype != "uint8" or channels not in (1, 3, 4):
            raise Img2ImgError(f"{path}: {fmt} cannot hold {channels}-channel {dtype} pixels; write a .tif")
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        kwargs = {"quality": quality} if fmt == "JPEG" else {}
        atomic_write(path, lambda f: image.save(f, format=fmt, **kwargs))


# The first writer that accepts a path writes it; a new format is a writer class plus its line here.
WRITERS: tuple[ImageWriter, ...] = (TiffWriter(), NpyWriter(), PNG16Writer(), PILWriter())


def write_image(path: Path | str, pixels: np.ndarray, quality: int = 95) -> None:
    """H x W x C pixels to `path`, by its suffix, atomically; a format that cannot hold them is refused."""
    path = Path(path)
    writer = next(w for w in WRITERS if w.accepts(path.suffix.lower(), pixels.dtype.name))
    writer.write(path, pixels, quality)


def write_volume(path: Path | str, volume: np.ndarray, like) -> None:
    """An X x Y x Z (x C) volume as NIfTI, with the affine and header of `like` (a nibabel image),
    stored at the volume's dtype with no scaling."""
    import nibabel

    header = like.header.copy()
    header.set_data_dtype(volume.dtype)
    image = type(like)(volume, like.affine, header)
    image.header.set_slope_inter(1.0, 0.0)
    path = Path(path)
    # nibabel writes by file name (its suffix says whether to gzip), so it writes a temporary
    # file of the same suffix, which then replaces `path`.
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nibabel.save(image, tmp)
