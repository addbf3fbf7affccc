"""Each domain's pixel format, read off the training data when a run starts, and held to.

The channel count and dtype of a domain are its first image's; a file with another count is
refused in one line (an 8-bit grey image in an 8-bit RGB domain is made RGB, as PIL converts it).
The range is --range-a/--range-b, else the dtype's (0..255, 0..65535), else (floats, signed
integers) the 0.5/99.5 percentiles of a sample of the train split.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import RunConfig, flag_name
from ..errors import ImageReadError, Img2ImgError
from ..io.pixel_format import DTYPE_RANGES, PixelFormat, auto_range, canonical_dtype, check_finite
from ..log import logger

# Images read for an "auto" range: spread evenly over the train split.
AUTO_RANGE_SAMPLES = 16
SIDES = ("in", "out")


class DomainData:
    """What paired and unpaired datasets share: the input's (side 0) and output's (side 1) pixel
    formats, and the checks each image meets before it is used. Subclasses give `raw_pixels`
    and `domain_length`."""

    def __init__(self, formats: tuple[PixelFormat, PixelFormat] | None, slice_axis: int) -> None:
        self.formats = formats or (PixelFormat(), PixelFormat())
        self.slice_axis = slice_axis

    def raw_pixels(self, side: int, index: int) -> tuple[str, np.ndarray]:
        """(name, pixels as read) of item `index` of domain `side`."""
        raise NotImplementedError

    def domain_length(self, side: int) -> int:
        raise NotImplementedError

    def conform(self, side: int, pixels: np.ndarray, name) -> np.ndarray:
        """The pixels, checked against the domain's format; an ImageReadError names what differs."""
        fmt = self.formats[side]
        check_finite(pixels, str(name))
        channels = pixels.shape[2]
        if channels != fmt.channels:
            if channels == 1 and fmt.channels == 3 and pixels.dtype == np.uint8:
                pixels = np.repeat(pixels, 3, axis=2)
            else:
                raise ImageReadError(name, f"has {channels} channel{'s' if channels > 1 else ''}; its domain has "
                                     f"{fmt.channels} (as its first image)")
        dtype = canonical_dtype(pixels.dtype)
        if dtype != fmt.dtype:
            raise ImageReadError(name, f"is {dtype}; its domain is {fmt.dtype} (as its first image)")
        return pixels

    def encode(self, side: int, pixels: np.ndarray) -> torch.Tensor:
        return self.formats[side].encode(pixels)


def seeded_subset(items: list, size: int | None, seed: int) -> list:
    """`size` of `items`, drawn once by `seed` and kept in their order (all of them if fewer)."""
    if size is None or size >= len(items):
        return items
    keep = np.random.default_rng([seed, len(items)]).choice(len(items), size, replace=False)
    return [items[i] for i in sorted(keep)]


def resolve_formats(cfg: RunConfig, train_set: DomainData) -> RunConfig:
    """`cfg` with the model's input and output formats read off `train_set` where not yet known
    (a new run), each said in one line; where known (a resumed run), the data is checked against
    them. `train_set` gets the formats."""
    model = cfg.model
    swap = cfg.data.direction == "BtoA"
    names = (cfg.data.domain_b, cfg.data.domain_a) if swap else (cfg.data.domain_a, cfg.data.domain_b)
    range_flags = ("range_b", "range_a") if swap else ("range_a", "range_b")
    changes = {}
    for side, prefix in enumerate(SIDES):
        first_name, first = _first_readable(train_set, side)
        channels, dtype = first.shape[2], canonical_dtype(first.dtype)
        asked = getattr(cfg.data, range_flags[side])
        stored = getattr(model, f"{prefix}_dtype")
        folder = range_flags[side][-1].upper()
        if stored is not None:
            fmt = PixelFormat.of_model(model, prefix)
            if channels != fmt.channels and not (channels == 1 and fmt.channels == 3 and dtype == "uint8"):
                raise Img2ImgError(f"{first_name}: has {channels} channels; the checkpoint's domain {folder} has "
                                   f"{fmt.channels}")
            if isinstance(asked, tuple) and asked != (fmt.lo, fmt.hi):
                raise Img2ImgError(f"{flag_name(range_flags[side])} {asked[0]:g},{asked[1]:g} cannot change when "
                                   f"resuming: the model was trained on {fmt.lo:g},{fmt.hi:g}")
            continue
        if isinstance(asked, tuple):
            lo, hi, how = *asked, f"from {flag_name(range_flags[side])}"
        elif asked is None and dtype in DTYPE_RANGES:
            (lo, hi), how = DTYPE_RANGES[dtype], f"the {dtype} range"
        else:
            lo, hi = _auto_range(train_set, side)
            how = f"auto: the 0.5/99.5 percentiles of {min(AUTO_RANGE_SAMPLES, train_set.domain_length(side))} images"
        fmt = PixelFormat(channels, dtype, float(lo), float(hi))
        logger.info(f"domain {folder} ({names[side]}): {fmt.describe()} ({how}), from {first_name}")
        changes.update({f"{prefix}_channels": channels, f"{prefix}_dtype": dtype, f"{prefix}_range": (fmt.lo, fmt.hi)})
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(model, **changes))
    train_set.formats = formats_of(cfg)
    return cfg


def formats_of(cfg: RunConfig) -> tuple[PixelFormat, PixelFormat]:
    return PixelFormat.of_model(cfg.model, "in"), PixelFormat.of_model(cfg.model, "out")


def with_default_formats(cfg: RunConfig) -> RunConfig:
    """`cfg` with 8-bit RGB formats where none were read (data given as datasets, not folders)."""
    model = cfg.model
    changes = {}
    for prefix in SIDES:
        if getattr(model, f"{prefix}_dtype") is None:
            fmt = PixelFormat.of_model(model, prefix)
            changes.update({f"{prefix}_dtype": fmt.dtype, f"{prefix}_range": (fmt.lo, fmt.hi)})
    return dataclasses.replace(cfg, model=dataclasses.replace(model, **changes)) if changes else cfg


def _first_readable(dataset: DomainData, side: int) -> tuple[str, np.ndarray]:
    problems = []
    for index in range(min(dataset.domain_length(side), 20)):
        try:
            name, pixels = dataset.raw_pixels(side, index)
        except Img2ImgError as e:
            problems.append(str(e))
            continue
        check_finite(pixels, name)
        return name, pixels
    raise Img2ImgError(f"no readable image among the first of its domain: {problems[0] if problems else 'none'}")


def _auto_range(dataset: DomainData, side: int) -> tuple[float, float]:
    n = dataset.domain_length(side)
    picks = sorted(set(np.linspace(0, n - 1, min(AUTO_RANGE_SAMPLES, n)).round().astype(int).tolist()))
    samples = []
    for index in picks:
        try:
            name, pixels = dataset.raw_pixels(side, index)
        except Img2ImgError:
            continue  # reported when training meets it
        check_finite(pixels, name)
        samples.append(pixels)
    return auto_range(samples)
