"""Translating images of any size in overlapping tiles, at memory bounded by the tile size.

Tiles are blended with a raised-cosine window across each overlap, so no seam shows. Tiles are
processed one row at a time: only the input, the output (both at their own pixel formats) and
one row of float tiles are ever held, never a float copy of the whole image.

Per-image normalisation (pix2pix's BatchNorm at test time, CycleGAN's InstanceNorm) would give
each tile its own statistics, and so its own tone. `TILE_STATISTICS` are the remedies; see
benchmarks/RESULTS.md for how they compare on a maps mosaic.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..cancellation import check_stop
from ..errors import Img2ImgError
from ..io.pixel_format import PixelFormat, resize_pixels
from ..models.norm import SharedStatistics, shared_statistics

# "pooled" (default): a first pass over all tiles pools their statistics, each pixel counted once;
#   a second pass normalises every tile by them (2x the work). Closest to the whole translation
#   on maps mosaics (benchmarks/RESULTS.md).
# "downscaled": statistics of the whole image shrunk to about one tile's area (one small extra pass);
# "per-tile": each tile its own (tones may differ between tiles; enough for a model without
#   per-image normalisation).
TILE_STATISTICS = ("pooled", "downscaled", "per-tile")

# Above this many pixels, translation tiles (in DEFAULT_TILE px tiles) unless told otherwise.
AUTO_TILE_PIXELS = 2048 * 2048
DEFAULT_TILE = 512

Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Tiling:
    """How images are tiled: in `tile`-pixel tiles overlapping by `overlap`, normalised by
    `statistics` (TILE_STATISTICS). `tile=None` tiles (DEFAULT_TILE px) only images above
    AUTO_TILE_PIXELS; `tile=0` never tiles."""

    tile: int | None = DEFAULT_TILE
    overlap: int = 64
    statistics: str = "pooled"

    def for_image(self, width: int, height: int) -> "Tiling | None":
        """The tiles an image of this size gets, or None to translate it whole."""
        tile = self.tile
        if tile is None:
            tile = DEFAULT_TILE if width * height > AUTO_TILE_PIXELS else 0
        return Tiling(tile, self.overlap, self.statistics) if tile else None

    @property
    def automatic(self) -> bool:
        return self.tile is None

    def validate(self, size_multiple: int) -> "Tiling":
        """Checks the settings; the tile is rounded up to a size the network accepts."""
        if self.statistics not in TILE_STATISTICS:
            raise Img2ImgError(f"tile statistics must be one of {', '.join(TILE_STATISTICS)}, not {self.statistics!r}")
        tile = math.ceil(self.tile / size_multiple) * size_multiple
        if self.tile < 1 or not 0 <= self.overlap < tile // 2:
            raise Img2ImgError(f"--tile {self.tile} --overlap {self.overlap}: the overlap must be at least 0 and "
                               "less than half the tile")
        return Tiling(tile, self.overlap, self.statistics)

    def describe(self) -> str:
        return f"{self.tile} px tiles, overlap {self.overlap}, {self.statistics} statistics"


AUTO_TILING = Tiling(None)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets along one axis: every `tile - overlap`, the last flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def blend_window(start: int, tile: int, length: int, overlap: int) -> np.ndarray:
    """1-D weights of one tile: rising over the overlap at an inner leading edge, falling at an
    inner trailing edge, 1 elsewhere; never 0, so every pixel has weight."""
    size = min(tile, length)
    w = np.ones(size, dtype=np.float32)
    if overlap == 0:
        return w
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 0.5) / overlap)).astype(np.float32)
    if start > 0:
        w[:overlap] = ramp
    if start + size < length:
        w[size - overlap:] = np.minimum(w[size - overlap:], ramp[::-1])
    return w


@dataclass(frozen=True)
class Formats:
    """The pixel formats a network maps between (8-bit RGB both ways by default)."""

    source: PixelFormat = PixelFormat()
    target: PixelFormat = PixelFormat()


@torch.no_grad()
def translate_tiled(network: Network, pixels: np.ndarray, tiling: Tiling, size_multiple: int,
                    batch_size: int = 1, formats: Formats = Formats()) -> np.ndarray:
    """H x W x C pixels of `formats.source` -> pixels of `formats.target`. `network` maps
    [N, C, h, w] in [-1, 1] to [N, C', h, w] (padding as it needs). One tile at a time measured
    both leaner and faster on the CPU than four (benchmarks/LOG.md, "Tiled translation")."""
    tiling = tiling.validate(size_multiple)
    statistics = SharedStatistics()
    if tiling.statistics == "downscaled":
        with shared_statistics(statistics):
            network(formats.source.encode(_downscaled(pixels, tiling.tile, size_multiple))[None])
    elif tiling.statistics == "pooled":
        with shared_statistics(statistics):
            _run_tiles(network, pixels, tiling, batch_size, formats, None, statistics, size_multiple)
    out = np.empty((*pixels.shape[:2], formats.target.channels), formats.target.dtype)
    if tiling.statistics == "per-tile":
        return _run_tiles(network, pixels, tiling, batch_size, formats, out, multiple=size_multiple)
    statistics.freeze()
    with shared_statistics(statistics):
        return _run_tiles(network, pixels, tiling, batch_size, formats, out, multiple=size_multiple)


def padded_index(length: int, multiple: int, reflect: bool) -> np.ndarray:
    """For each position of an axis padded at its end to a multiple, the source position: as
    `inference.pad_to_multiple` pads the whole image (by reflection, or by replicating the last
    row or column), so that the tiles along the bottom and right edges see what the whole
    translation sees there, not the network's own zero padding."""
    index = np.arange(length + (-length % multiple))
    beyond = index >= length
    index[beyond] = 2 * (length - 1) - index[beyond] if reflect else length - 1
    return index


def _downscaled(pixels: np.ndarray, tile: int, size_multiple: int) -> np.ndarray:
    """The image shrunk to about one tile's area, each side a multiple the network accepts."""
    h, w = pixels.shape[:2]
    scale = min(1.0, tile / math.sqrt(w * h))
    width, height = (max(size_multiple, round(side * scale / size_multiple) * size_multiple) for side in (w, h))
    return resize_pixels(pixels, width, height)


def _run_tiles(network: Network, pixels: np.ndarray, tiling: Tiling, batch_size: int, formats: Formats,
               out: np.ndarray | None, recording: SharedStatistics | None = None, multiple: int = 1) -> np.ndarray | None:
    """Runs every tile, a row at a time; blends them into `out` (H x W x C' of the target format) if given.
    Tiles cover the image padded at the bottom and right to `multiple` (`padded_index`), as the
    whole translation pads it; the padding is cropped off the output. While `recording`
    statistics, each tile's pixels are weighted by its share of the blend, so that every (padded)
    image pixel counts once in the pool, as in the whole translation.

    The float accumulator covers one row of tiles. Once a row is done, the image rows above the
    next row's first line get no more contributions, so they are written out and dropped.
    """
    image_h, image_w = pixels.shape[:2]
    reflect = -image_h % multiple < image_h and -image_w % multiple < image_w
    row_index, col_index = padded_index(image_h, multiple, reflect), padded_index(image_w, multiple, reflect)
    height, width = len(row_index), len(col_index)
    tile_h, tile_w = min(tiling.tile, height), min(tiling.tile, width)
    rows = tile_starts(height, tiling.tile, tiling.overlap)
    cols = tile_starts(width, tiling.tile, tiling.overlap)
    col_windows = [blend_window(x, tiling.tile, width, tiling.overlap) for x in cols]
    if recording is not None:
        row_total, col_total = np.zeros(height, np.float32), np.zeros(width, np.float32)
        for y in rows:
            row_total[y : y + tile_h] += blend_window(y, tiling.tile, height, tiling.overlap)
        for x, window in zip(cols, col_windows):
            col_total[x : x + tile_w] += window
    carry = carry_weight = None
    for r, y in enumerate(rows):
        acc = np.zeros((tile_h, width, formats.target.channels), dtype=np.float32)
        weight = np.zeros((tile_h, width, 1), dtype=np.float32)
        if carry is not None:
            acc[: len(carry)] = carry
            weight[: len(carry)] = carry_weight
        row_window = blend_window(y, tiling.tile, height, tiling.overlap)
        for start in range(0, len(cols), batch_size):
            check_stop()
            chunk = cols[start : start + batch_size]
            batch = torch.stack([formats.source.encode(_tile(pixels, row_index, col_index, y, x, tile_h, tile_w))
                                 for x in chunk])
            if recording is not None:
                shares = [np.outer(row_window / row_total[y : y + tile_h], col_windows[start + k] / col_total[x : x + tile_w])
                          for k, x in enumerate(chunk)]
                recording.pixel_weights = torch.from_numpy(np.stack(shares))[:, None]
            result = network(batch)
            if out is None:
                continue
            tiles = result.float().permute(0, 2, 3, 1).numpy()
            for k, x in enumerate(chunk):
                w = row_window[:, None, None] * col_windows[start + k][None, :, None]
                acc[:, x : x + tile_w] += tiles[k] * w
                weight[:, x : x + tile_w] += w
        if out is None:
            continue
        done = rows[r + 1] - y if r + 1 < len(rows) else tile_h
        kept = max(0, min(done, image_h - y))  # rows of padding are dropped
        blended = acc[:kept, :image_w] / weight[:kept, :image_w]
        out[y : y + kept] = formats.target.decode(blended)
        carry, carry_weight = acc[done:], weight[done:]
    return out


def _tile(pixels: np.ndarray, row_index: np.ndarray, col_index: np.ndarray, y: int, x: int, h: int, w: int) -> np.ndarray:
    """The tile at (y, x) of the padded image: a view where it lies inside the image."""
    if y + h <= pixels.shape[0] and x + w <= pixels.shape[1]:
        return pixels[y : y + h, x : x + w]
    return pixels[np.ix_(row_index[y : y + h], col_index[x : x + w])]
