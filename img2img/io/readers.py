"""The one place images are read, by format: every entry point (training, translation, the app,
FID, dataset tools) handles EXIF, modes, bit depths and broken files alike.

Each reader returns `Pixels`: the pixels as an H x W x C array of the file's dtype (8-bit and
16-bit integers, floats, CT in Hounsfield units), and the dtype the file stores. A volume
(NIfTI) is read as its 2D slices along an axis, each one item, `(file, slice)`.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import ImageReadError
from .limits import DEFAULT_LIMITS, Limits, over_limit
from .pixel_format import DTYPE_RANGES, PixelFormat, preview_uint8

PIL_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm"})
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_EXTENSIONS = PIL_EXTENSIONS | TIFF_EXTENSIONS | DICOM_EXTENSIONS | {".npy", ".nii", ".gz"}
DEFAULT_MAX_PIXELS = DEFAULT_LIMITS.max_pixels
# The extension chooses the reader; PIL then opens only the formats it is here for, whatever the
# content (a JPEG named .png still reads), never the others it could sniff (EPS would run
# Ghostscript where it is installed).
PIL_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "PPM")  # JPEG opens multi-picture (MPO) files too


class Header(NamedTuple):
    """What a file declares before its pixels are decoded (a volume: one slice)."""

    height: int
    width: int
    channels: int
    bytes_per_value: int = 1


class Pixels(NamedTuple):
    array: np.ndarray  # H x W x C
    source_dtype: str  # as stored in the file (a DICOM's raw integers before rescaling)


@dataclass(frozen=True)
class ImageItem:
    """One trainable image: a file, or one slice of a volume file."""

    path: Path
    slice: int | None = None

    @property
    def key(self) -> str:
        """Matches A and B items: the file name without its extension, and the slice."""
        stem = file_stem(self.path)
        return stem if self.slice is None else f"{stem}#{self.slice}"

    def __str__(self) -> str:
        return str(self.path) if self.slice is None else f"{self.path} (slice {self.slice})"


def file_stem(path: Path) -> str:
    return path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem


def is_volume_file(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_image_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return is_volume_file(path)
    return suffix in IMAGE_EXTENSIONS


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in Path(folder).glob(pattern) if p.is_file() and is_image_file(p))


def list_items(files: list[Path], slice_axis: int = -1) -> list[ImageItem]:
    """Files as items: a volume gives one item per slice along `slice_axis`."""
    items = []
    for path in files:
        if is_volume_file(path):
            shape = _nifti_shape(path)
            items += [ImageItem(path, k) for k in range(shape[slice_axis])]
        else:
            items.append(ImageItem(path))
    return items


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only (before EXIF rotation)."""
    h, w, _ = image_shape(path)
    return w, h


def image_shape(path: Path, slice_axis: int = -1) -> tuple[int, int, int]:
    """(height, width, channels) of a file (a volume's slice), from its header where the format has one."""
    path = Path(path)
    try:
        return reader_for(path).header(path, slice_axis)[:3]
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except Exception as e:  # each library raises its own types for broken files
        raise ImageReadError(path, f"cannot read image ({type(e).__name__}: {str(e)[:200]})") from None


def limits_for(max_pixels: int | None, limits: Limits | None) -> Limits | None:
    """`limits` as given; else the default ones with `max_pixels`; None (no limit) for neither."""
    if limits is not None:
        return limits
    return dataclasses.replace(DEFAULT_LIMITS, max_pixels=max_pixels) if max_pixels is not None else None


def check_header(path: Path, header: Header, limits: Limits | None) -> None:
    """Refuse a file whose declared pixels are over `limits`, before anything is decoded."""
    if limits is None:
        return
    h, w, c, size = header
    if w * h > limits.max_pixels:
        raise ImageReadError(path, f"{w}x{h} is {w * h / 1e6:.1f} MP, over the {limits.max_pixels / 1e6:g} MP limit "
                             "(raise --max-pixels to allow it)")
    problem = (over_limit("it has", c, "max_channels", limits, " channels")
               or over_limit(f"decoded ({w}x{h}x{c} values of {size} bytes) it takes", w * h * c * size / 2**20,
                             "max_decoded_mb", limits, " MB"))
    if problem:
        raise ImageReadError(path, problem)


def read_image(path: Path | str, max_pixels: int | None = DEFAULT_MAX_PIXELS, slice_index: int | None = None,
               slice_axis: int = -1, limits: Limits | None = None) -> Pixels:
    """A file's pixels (H x W x C, the file's dtype), or an ImageReadError naming the file and the
    problem. `slice_index`: which slice of a volume (a volume needs one). `limits` (by default
    the default ones with `max_pixels`; none when that is None) are checked against the file's
    header before any pixels are decoded."""
    path = Path(path)
    limits = limits_for(max_pixels, limits)
    try:
        reader = reader_for(path)
        if limits is not None:
            reader.check(path, limits, slice_axis)
        return reader.read(path, slice_index, slice_axis)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except MemoryError:
        raise ImageReadError(path, "too large to hold in memory") from None
    except Exception as e:  # each library raises its own types for broken files
        raise ImageReadError(path, f"cannot read image ({type(e).__name__}: {str(e)[:200]})") from None


def read_item(item: ImageItem, max_pixels: int | None = DEFAULT_MAX_PIXELS, slice_axis: int = -1) -> Pixels:
    return read_image(item.path, max_pixels, item.slice, slice_axis)


def _hwc_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3 and shape[2] <= 64:
        return shape[0], shape[1], shape[2]
    raise ImageReadError(path, f"array of shape {tuple(shape)}; expected H x W or H x W x C (C at most 64)")


def _as_hwc(array: np.ndarray) -> np.ndarray:
    array = array[..., None] if array.ndim == 2 else array
    return array.astype(array.dtype.newbyteorder("="), copy=False)  # big-endian files become native


# ---- PIL: 8-bit formats and 16-bit PNG ----------------------------------------------------------
def _pil_open(path: Path) -> Image.Image:
    """The file opened (header only) by PIL, as one of PIL_FORMATS."""
    if path.suffix.lower() not in PIL_EXTENSIONS:
        raise ImageReadError(path, f"{path.suffix or 'no extension'}: not an image format img2img reads; use one of "
                             f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    try:
        return Image.open(path, formats=PIL_FORMATS)
    except Image.UnidentifiedImageError:
        raise ImageReadError(path, "cannot read image (not a JPEG, PNG, BMP, WebP or PPM file, or a broken one)") from None


def _pil_header(path: Path) -> Header:
    with _pil_open(path) as im:
        channels = {"RGB": 3, "RGBA": 3, "P": 3, "CMYK": 3, "YCbCr": 3}.get(im.mode, 1)
        if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
            return Header(im.height, im.width, 3, 2)
        size = 4 if im.mode in ("I", "F") else 2 if "16" in im.mode else 1
        return Header(im.height, im.width, max(channels, len(im.getbands())), size)


def _open_pil(path: Path, limits: Limits | None = None) -> Image.Image:
    """The decoded image, upright (EXIF orientation applied)."""
    if limits is not None:
        check_header(path, _pil_header(path), limits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _pil_open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)


def pil_pixels(im: Image.Image) -> Pixels:
    """The one rule for a PIL image's pixels, whether it came from a file or a caller: 16-bit,
    32-bit and float greyscale as they are, grey (L, 1, and LA on white) as one 8-bit channel,
    anything else as 8-bit RGB with transparent pixels on white."""
    if im.mode.startswith("I;16"):
        return Pixels(np.asarray(im).astype(np.uint16)[..., None], "uint16")
    if im.mode == "I":  # PIL opens some 16-bit greyscale PNGs as 32-bit
        a = np.asarray(im)
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return Pixels(a.astype(np.uint16)[..., None], "uint16")
        return Pixels(a.astype(np.int32)[..., None], "int32")
    if im.mode == "F":
        return Pixels(np.asarray(im, dtype=np.float32)[..., None], "float32")
    if im.mode in ("L", "1"):
        return Pixels(np.asarray(im.convert("L"))[..., None], "uint8")
    if im.mode in ("LA", "La"):
        return Pixels(np.asarray(_on_white(im).convert("L"))[..., None], "uint8")
    return Pixels(np.asarray(to_rgb(im)), "uint8")


def _png_is_16bit_colour(path: Path) -> bool:
    """From the IHDR chunk: bit depth 16 with colour type 2 (RGB) or 6 (RGBA), which PIL reduces to 8 bits."""
    with open(path, "rb") as f:
        header = f.read(26)
    return len(header) == 26 and header[12:16] == b"IHDR" and header[24] == 16 and header[25] in (2, 6)


def _read_png16_colour(path: Path) -> Pixels:
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(path, "cannot read image (OpenCV could not decode this PNG)")
    return Pixels(np.ascontiguousarray(array[..., 2::-1]), "uint16")  # BGR(A) -> RGB, alpha dropped


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB. Transparent pixels are composited onto white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale the full range to 8 bits instead of clipping.
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA"):
        im = _on_white(im)
    return im if im.mode == "RGB" else im.convert("RGB")


# ---- TIFF (tifffile): 8/16/32-bit integers and floats, 1 to N channels ---------------------------
def _tiff_layout(path: Path) -> tuple[Header, bool]:
    """(the first series' header, whether its channels come first), from the TIFF's tags."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, axes, size = tuple(series.shape), series.axes, series.dtype.itemsize
    if len(shape) == 2:
        return Header(shape[0], shape[1], 1, size), False
    if len(shape) == 3 and axes[:2] == "YX":
        return Header(shape[0], shape[1], shape[2], size), False
    if len(shape) == 3 and axes[-2:] == "YX":  # bands stored as planes or pages
        return Header(shape[1], shape[2], shape[0], size), True
    raise ImageReadError(path, f"TIFF of shape {shape} (axes {axes}); expected one image of H x W x C")


def _read_tiff(path: Path) -> Pixels:
    import tifffile

    _, channels_first = _tiff_layout(path)
    array = tifffile.imread(path, series=0)
    if channels_first:
        array = np.moveaxis(array, 0, -1)
    array = _as_hwc(np.ascontiguousarray(array))
    return Pixels(array, array.dtype.name)


# ---- NumPy arrays -------------------------------------------------------------------------------
def _npy_header(path: Path) -> Header:
    """From the .npy header alone (what it declares, whatever follows)."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    if dtype.kind not in "uifb":
        raise ImageReadError(path, f"array of {dtype}; expected integers or floats")
    return Header(*_hwc_shape(shape, path), dtype.itemsize)


def _read_npy(path: Path) -> Pixels:
    _npy_header(path)
    array = _as_hwc(np.array(np.load(path, mmap_mode="r", allow_pickle=False)))
    return Pixels(array, array.dtype.name)


# ---- DICOM (pydicom): rescale slope and intercept applied, so CT reads in HU ---------------------
def _dicom(path: Path, pixels: bool):
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageReadError(path, "DICOM without an image (no Rows/Columns)")
    return ds


def _dicom_header(path: Path) -> Header:
    ds = _dicom(path, pixels=False)
    return Header(int(ds.Rows), int(ds.Columns), int(getattr(ds, "SamplesPerPixel", 1) or 1),
                  max(1, int(getattr(ds, "BitsAllocated", 16) or 16) // 8))


def _read_dicom(path: Path) -> Pixels:
    from pydicom.pixels import apply_rescale

    ds = _dicom(path, pixels=True)
    if "PixelData" not in ds:
        raise ImageReadError(path, "DICOM without pixel data")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise ImageReadError(path, f"multi-frame DICOM ({ds.NumberOfFrames} frames); save the frames as single files")
    raw = ds.pixel_array
    values = apply_rescale(raw, ds)
    if values is not raw and values.dtype.kind == "f":
        integral = np.array_equal(values, np.rint(values))
        if integral and values.min() >= -32768 and values.max() <= 32767:
            values = values.astype(np.int16)  # CT in whole HU
        else:
            values = values.astype(np.float32)
    return Pixels(_as_hwc(np.ascontiguousarray(values)), raw.dtype.name)


# ---- NIfTI (nibabel): a volume read as 2D slices ------------------------------------------------
def _nifti(path: Path):
    import nibabel

    try:
        return nibabel.load(path)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ImageReadError(path, f"cannot read NIfTI ({type(e).__name__}: {str(e)[:200]})") from None


def _nifti_dims(path: Path) -> tuple[tuple[int, int, int], int]:
    """(X, Y, Z), channels: a 4th axis is channels (as the writers store several output channels)."""
    shape = tuple(_nifti(path).shape)
    if len(shape) not in (2, 3, 4):
        raise ImageReadError(path, f"{len(shape)}D NIfTI of shape {shape}; only 2D images and 3D volumes are read")
    spatial = (*shape[:3], 1)[:3]
    return spatial, shape[3] if len(shape) == 4 else 1


def _nifti_shape(path: Path) -> tuple[int, int, int]:
    """(X, Y, Z) of a one-channel volume, the kind that is read slice by slice."""
    spatial, channels = _nifti_dims(path)
    if channels > 1:
        raise ImageReadError(path, f"4D NIfTI of shape {(*spatial, channels)}; only 2D images and 3D volumes are read "
                             "as slices (split a 4D series into volumes first)")
    return spatial


def check_volume(path: Path, limits: Limits | None, slice_axis: int = -1) -> None:
    """Refuse a volume whose header declares more voxels or slices than `limits` allow."""
    if limits is None:
        return
    shape, channels = _nifti_dims(path)
    problem = (over_limit(f"its volume ({' x '.join(map(str, shape))}) has", int(np.prod(shape, dtype=np.int64)) * channels,
                          "max_volume_voxels", limits, " voxels")
               or over_limit("it has", shape[slice_axis], "max_volume_slices", limits, " slices"))
    if problem:
        raise ImageReadError(path, problem)


def _read_nifti_slice(path: Path, index: int, axis: int) -> Pixels:
    shape = _nifti_shape(path)
    if not 0 <= index < shape[axis]:
        raise ImageReadError(path, f"has {shape[axis]} slices along axis {axis}, not {index + 1}")
    img = _nifti(path)
    proxy = img.dataobj if len(img.shape) == 3 else img.dataobj[..., 0]
    where = [slice(None)] * 3
    where[axis] = index
    values = np.asarray(proxy[tuple(where)])
    return Pixels(_as_hwc(_nifti_values(values)), img.get_data_dtype().newbyteorder("=").name)


def _nifti_values(values: np.ndarray) -> np.ndarray:
    """Scaled values (nibabel applies scl_slope/scl_inter, as floats) stay floats, as float32."""
    return values.astype(np.float32) if values.dtype.kind == "f" else values


def read_volume(path: Path | str, limits: Limits | None = DEFAULT_LIMITS, slice_axis: int = -1):
    """(the volume as an X x Y x Z array, or X x Y x Z x C for several channels; the nibabel
    image for its affine and header). `limits` are checked against the header first (its
    slices along `slice_axis`, and each slice as an image)."""
    path = Path(path)
    try:
        _, channels = _nifti_dims(path)
        if limits is not None:
            check_volume(path, limits, slice_axis)
            NiftiReader().check(path, limits, slice_axis)
        img = _nifti(path)
        volume = np.asarray(img.dataobj)
        volume = volume.reshape(volume.shape[:3]) if volume.ndim == 4 and channels == 1 else volume
        return _nifti_values(volume.astype(volume.dtype.newbyteorder("="), copy=False)), img
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except Exception as e:
        raise ImageReadError(path, f"cannot read NIfTI ({type(e).__name__}: {str(e)[:200]})") from None


# ---- the registry: one reader per format ---------------------------------------------------------
class ImageReader:
    """A file format's reader: `header` from the file's header where the format has one (before
    any pixels are decoded, so that limits cost no memory), `check` of that header against
    limits, and `read`, which decodes."""

    def accepts(self, path: Path) -> bool:
        raise NotImplementedError

    def header(self, path: Path, slice_axis: int) -> Header:
        raise NotImplementedError

    def check(self, path: Path, limits: Limits, slice_axis: int) -> None:
        check_header(path, self.header(path, slice_axis), limits)

    def read(self, path: Path, slice_index: int | None, slice_axis: int) -> Pixels:
        raise NotImplementedError


class SuffixReader(ImageReader):
    suffixes: frozenset[str] = frozenset()

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes


class NiftiReader(ImageReader):
    """NIfTI volumes (nibabel), read as 2D slices along an axis."""

    def accepts(self, path: Path) -> bool:
        return is_volume_file(path)

    def header(self, path: Path, slice_axis: int) -> Header:
        shape, channels = _nifti_dims(path)
        plane = [n for axis, n in enumerate(shape) if axis != slice_axis % 3]
        return Header(plane[0], plane[1], channels, _nifti(path).get_data_dtype().itemsize)

    def read(self, path, slice_index, slice_axis) -> Pixels:
        if slice_index is None:
            raise ImageReadError(path, "is a volume; read it with read_volume, or name a slice")
        return _read_nifti_slice(path, slice_index, slice_axis)


class TiffReader(SuffixReader):
    """TIFF (tifffile): 8/16/32-bit integers and floats, 1 to N channels."""

    suffixes = TIFF_EXTENSIONS

    def header(self, path, slice_axis):
        return _tiff_layout(path)[0]

    def read(self, path, slice_index, slice_axis):
        return _read_tiff(path)


class NpyReader(SuffixReader):
    """NumPy arrays, H x W or H x W x C."""

    suffixes = frozenset({".npy"})

    def header(self, path, slice_axis):
        return _npy_header(path)

    def read(self, path, slice_index, slice_axis):
        return _read_npy(path)


class DicomReader(SuffixReader):
    """DICOM (pydicom), rescaled, so that CT reads in HU."""

    suffixes = DICOM_EXTENSIONS

    def header(self, path, slice_axis):
        return _dicom_header(path)

    def read(self, path, slice_index, slice_axis):
        return _read_dicom(path)


class PILReader(ImageReader):
    """Everything else, through PIL as the format its extension names (16-bit colour PNGs, which
    PIL reduces to 8 bits, through OpenCV), converted by `pil_pixels`."""

    def accepts(self, path: Path) -> bool:
        return True

    def header(self, path, slice_axis):
        return _pil_header(path)

    def read(self, path, slice_index, slice_axis):
        if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
            return _read_png16_colour(path)
        return pil_pixels(_open_pil(path))


# The first reader that accepts a file reads it; PIL takes what no other does. A new format is a
# reader class plus its line here.
READERS: tuple[ImageReader, ...] = (NiftiReader(), TiffReader(), NpyReader(), DicomReader(), PILReader())


def reader_for(path: Path) -> ImageReader:
    return next(reader for reader in READERS if reader.accepts(path))


def load_rgb(path: Path | str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read an image as upright 8-bit RGB (what people and Inception look at), or raise
    ImageReadError naming the file and problem. 8-bit files convert as PIL converts them;
    other data is windowed by its dtype's range (floats by their own minimum and maximum)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in PIL_EXTENSIONS and not (suffix == ".png" and _png_is_16bit_colour(path)):
            return to_rgb(_open_pil(path, limits_for(max_pixels, None)))
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(path, f"cannot read image ({e})") from None
    pixels = read_image(path, max_pixels, slice_index=0 if is_volume_file(path) else None).array
    return Image.fromarray(preview_of_values(pixels))


def preview_of_values(pixels: np.ndarray) -> np.ndarray:
    """8-bit RGB of raw pixels: windowed by the dtype's range (floats and signed integers by
    their own minimum and maximum), by the preview rule."""
    lo, hi = DTYPE_RANGES.get(pixels.dtype.name) or (float(np.nanmin(pixels)), float(np.nanmax(pixels)))
    values = (pixels.astype(np.float32) - lo) / max(hi - lo, 1e-12) * 2 - 1
    return preview_uint8(np.nan_to_num(values))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW float in [-1, 1] (the 8-bit RGB pixel format's mapping)."""
    return PixelFormat().encode(np.asarray(image))


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """CHW in [-1, 1] -> HWC uint8."""
    return PixelFormat().decode_tensor(t)
