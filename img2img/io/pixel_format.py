"""How a domain's pixels map onto the networks' [-1, 1] and back: channel count, dtype and value
range. The mapping is linear with clipping; 8-bit RGB (0..255) is today's `x / 127.5 - 1`, bit
for bit.

One preview rule turns any domain into 8-bit RGB for people and for Inception (sample grids,
the app, FID): the stored range is the window, one channel is shown as grey, and more than three
through the chosen preview channels (default the first three).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import Img2ImgError

# Ranges that follow from the dtype; other dtypes (float, signed or wide integers) default to
# "auto": percentiles of the training data.
DTYPE_RANGES = {"uint8": (0.0, 255.0), "uint16": (0.0, 65535.0)}
# Stored dtypes. Floats are translated and written as float32.
SUPPORTED_DTYPES = ("uint8", "uint16", "int8", "int16", "uint32", "int32", "float32")
AUTO_PERCENTILES = (0.5, 99.5)


def canonical_dtype(dtype) -> str:
    """The stored name of an array's dtype: floats become float32; an unsupported one is refused."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return "float32"
    if dtype.kind == "b":
        return "uint8"
    name = dtype.newbyteorder("=").name
    if name not in SUPPORTED_DTYPES:
        raise Img2ImgError(f"pixel type {dtype} is not supported (8-32-bit integers or floats)")
    return name


@dataclass(frozen=True)
class PixelFormat:
    """A domain's pixels: `channels` of `dtype`, with [lo, hi] mapped linearly onto [-1, 1]."""

    channels: int = 3
    dtype: str = "uint8"
    lo: float = 0.0
    hi: float = 255.0

    @classmethod
    def of_model(cls, model, side: str) -> "PixelFormat":
        """The input ("in") or output ("out") format of a ModelConfig; 8-bit 0..255 where unset."""
        dtype = getattr(model, f"{side}_dtype") or "uint8"
        lo, hi = getattr(model, f"{side}_range") or DTYPE_RANGES.get(dtype, (0.0, 255.0))
        return cls(getattr(model, f"{side}_channels"), dtype, float(lo), float(hi))

    @property
    def is_integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"

    def describe(self) -> str:
        return f"{self.channels} channel{'s' if self.channels > 1 else ''} {self.dtype} {self.lo:g}..{self.hi:g}"

    def encode(self, pixels: np.ndarray) -> torch.Tensor:
        """H x W x C pixels of this format -> C x H x W float32 in [-1, 1] (clipped)."""
        half = (self.hi - self.lo) / 2
        # For 0..255 this is x / 127.5 - 1 exactly, as before formats existed.
        t = torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(2, 0, 1)
        return t.sub_(self.lo).div_(half).sub_(1.0).clamp_(-1.0, 1.0)

    def decode(self, values: np.ndarray) -> np.ndarray:
        """H x W x C floats in [-1, 1] -> pixels of this format (rounded and clipped for integers)."""
        half = np.float32((self.hi - self.lo) / 2)
        y = (np.clip(values.astype(np.float32, copy=False), -1, 1) + 1) * half + np.float32(self.lo)
        if not self.is_integer:
            return y.astype(np.float32, copy=False)
        info = np.iinfo(self.dtype)
        return np.clip(np.rint(y), max(info.min, self.lo), min(info.max, self.hi)).astype(self.dtype)

    def decode_tensor(self, t: torch.Tensor) -> np.ndarray:
        """C x H x W in [-1, 1] -> H x W x C pixels."""
        return self.decode(t.detach().float().permute(1, 2, 0).cpu().numpy())

    def adapt(self, pixels: np.ndarray, name: str = "image") -> tuple[np.ndarray, str | None]:
        """Pixels of another format made this one's, and a one-line note of what was converted
        (None if nothing was). Channels: grey is repeated to RGB, RGB(A) becomes grey by
        luminance, alpha is dropped; other counts are refused. Values: between two dtypes that
        have natural ranges (uint8, uint16) they are rescaled; otherwise they are taken in the
        model's own units."""
        notes = []
        channels = pixels.shape[2]
        if channels != self.channels:
            if channels == 1 and self.channels == 3:
                pixels = np.repeat(pixels, 3, axis=2)
            elif channels in (3, 4) and self.channels == 1:
                pixels = luminance(pixels[..., :3])
            elif channels == 4 and self.channels == 3:
                pixels = pixels[..., :3]
            else:
                raise Img2ImgError(f"{name}: has {channels} channels; the model takes {self.channels}")
            notes.append(f"{channels} channels made {self.channels}")
        source = canonical_dtype(pixels.dtype)
        if source != self.dtype:
            if source in DTYPE_RANGES and self.dtype in DTYPE_RANGES:
                (slo, shi), (lo, hi) = DTYPE_RANGES[source], (self.lo, self.hi)
                pixels = (pixels.astype(np.float32) - slo) / (shi - slo) * (hi - lo) + lo
                notes.append(f"{source} rescaled from {slo:g}..{shi:g} to the model's {lo:g}..{hi:g}")
            else:
                notes.append(f"{source} values taken as the model's {self.dtype} {self.lo:g}..{self.hi:g}")
        note = f"{name}: {'; '.join(notes)}" if notes else None
        return pixels, note


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (PIL's "L" weights), keeping the dtype: H x W x 3 -> H x W x 1."""
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if np.dtype(rgb.dtype).kind in "iu":
        y = np.rint(y)
    return y.astype(rgb.dtype)[..., None]


def check_finite(pixels: np.ndarray, name: str) -> None:
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        bad = int((~np.isfinite(pixels)).sum())
        raise Img2ImgError(f"{name}: holds {bad} NaN or infinite values; refusing to use it")


def auto_range(samples: Sequence[np.ndarray]) -> tuple[float, float]:
    """The AUTO_PERCENTILES of the values of `samples` (a few images of one domain)."""
    values = np.concatenate([np.asarray(s, np.float32).ravel() for s in samples])
    lo, hi = (float(v) for v in np.percentile(values, AUTO_PERCENTILES))
    if lo >= hi:
        hi = lo + 1.0  # a constant domain: any span maps it to -1
    return lo, hi


def preview_channels(channels: int, chosen: Sequence[int] | None = None) -> tuple[int, ...]:
    """Which channels a preview shows: one (grey) or three. `chosen` applies above 3 channels."""
    if channels == 3:
        return (0, 1, 2)
    if channels < 3:
        return (0,)
    picked = tuple(chosen) if chosen else (0, 1, 2)
    if max(picked) >= channels:
        raise Img2ImgError(f"--preview-channels {','.join(map(str, picked))}: the data has {channels} channels")
    return picked


def describe_preview(channels: int, chosen: Sequence[int] | None = None) -> str:
    """What a preview of this channel count shows, for FID rows: rgb, grey or the channels."""
    picked = preview_channels(channels, chosen)
    if channels == 3:
        return "rgb"
    if len(picked) == 1:
        return f"grey of channel {picked[0]}" if channels > 1 else "grey"
    return "channels " + ",".join(map(str, picked))


def preview_rgb(x: torch.Tensor, chosen: Sequence[int] | None = None) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> [N, 3, H, W] in [-1, 1], by the preview rule."""
    picked = list(preview_channels(x.shape[1], chosen))
    x = x[:, picked]
    return x.expand(-1, 3, -1, -1) if len(picked) == 1 else x


def preview_uint8(values: np.ndarray, chosen: Sequence[int] | None = None) -> np.ndarray:
    """H x W x C floats in [-1, 1] -> H x W x 3 uint8, by the preview rule."""
    picked = list(preview_channels(values.shape[2], chosen))
    rgb = values[..., picked]
    if len(picked) == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.clip(np.rint((np.clip(rgb, -1, 1) + 1) * 127.5), 0, 255).astype(np.uint8)


def resize_pixels(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL's bicubic filter, which widens its kernel when it downscales (antialiasing), as the
    canonical pix2pix and CycleGAN data path does through torchvision (cv2's bicubic does not, and
    its area filter is blurrier). 8-bit images of 1, 3 or 4 channels go through PIL as they are;
    other data channel by channel as 32-bit floats, rounded back to integers where they were."""
    if image.shape[:2] == (height, width):
        return image
    if image.dtype == np.uint8 and image.shape[2] in (1, 3, 4):
        source = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
        out = np.asarray(source.resize((width, height), Image.BICUBIC))
        return out[..., None] if out.ndim == 2 else out
    planes = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), "F").resize((width, height), Image.BICUBIC))
              for c in range(image.shape[2])]
    out = np.stack(planes, axis=2)
    if image.dtype.kind in "iu":
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def pad_pixels(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad bottom and right to a multiple: by reflection, or by edge replication where the image
    is too small to reflect (as `inference.pad_to_multiple` pads a tensor)."""
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)
