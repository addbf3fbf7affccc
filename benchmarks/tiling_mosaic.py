"""Tiled against whole translation on a maps mosaic: which normalisation statistics make tiles agree.

    python benchmarks/tiling_mosaic.py [--data ../shared/datasets/maps] [--grid 4] [--tile 512 --overlap 64]
    python benchmarks/tiling_mosaic.py --grid 8 --no-figure     # 2288x2288: the image-edge figures

Stitches the first grid x grid val pairs (aerial | map), each resized to 286 px (the training
scale: load 286, crop 256), into one aerial mosaic and its map mosaic, translates the mosaic
with the bundled model whole and in tiles under each normalisation option, and prints, per
option: mean |tiled - whole| and mean |output - real map| (8-bit levels), the seam ratio (gradient
energy in the tile overlaps over that elsewhere, divided by the same ratio of the whole
translation: 1.00 means no seam), wall-clock, and peak memory growth; then, per option, the
difference on the image's last 3 rows and columns against inside them, and the sharpest jump
between neighbouring rows or columns. Writes a side-by-side figure to
benchmarks/figures/tiling_mosaic.jpg unless --no-figure.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from PIL import Image

from img2img.translate.tiling import TILE_STATISTICS, Tiling, tile_starts
from img2img.translate.translator import Translator

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"


def mosaic(data: Path, grid: int, side: int) -> tuple[Image.Image, Image.Image]:
    files = sorted((data / "val").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)[: grid * grid]
    aerial, target = Image.new("RGB", (grid * side,) * 2), Image.new("RGB", (grid * side,) * 2)
    for i, f in enumerate(files):
        with Image.open(f) as pair:
            w = pair.width // 2
            a, b = pair.crop((0, 0, w, pair.height)), pair.crop((w, 0, 2 * w, pair.height))
        at = ((i % grid) * side, (i // grid) * side)
        aerial.paste(a.resize((side, side), Image.BICUBIC), at)
        target.paste(b.resize((side, side), Image.BICUBIC), at)
    return aerial, target


def seam_ratio(out: np.ndarray, reference: np.ndarray, tiling: Tiling) -> float:
    def ratio(image: np.ndarray) -> float:
        ratios = []
        for axis in (0, 1):
            energy = np.square(np.diff(image.astype(float), axis=1 - axis)).mean(axis=(axis, 2))
            length = image.shape[1 - axis]
            in_overlap = np.zeros(length - 1, bool)
            for start in tile_starts(length, tiling.tile, tiling.overlap)[1:]:
                in_overlap[start - 1 : start + tiling.overlap] = True
            ratios.append(energy[in_overlap].mean() / energy[~in_overlap].mean())
        return float(np.mean(ratios))

    return ratio(out) / ratio(reference)


def edge_band_difference(out: np.ndarray, reference: np.ndarray, band: int = 3) -> tuple[float, float]:
    """Mean |out - reference| on the last `band` rows and columns, and inside them."""
    diff = np.abs(out - reference)
    edges = np.concatenate([diff[-band:].ravel(), diff[:-band, -band:].ravel()])
    return float(edges.mean()), float(diff[band:-band, band:-band].mean())


def sharpest_jump(image: np.ndarray) -> tuple[float, str]:
    """The largest mean jump between neighbouring columns or rows, over the median one, and
    where it is ("column 2286|2287")."""
    columns = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    rows = np.abs(np.diff(image, axis=0)).mean(axis=(1, 2))
    jumps = np.concatenate([columns, rows])
    i = int(jumps.argmax())
    where = f"column {i}|{i + 1}" if i < len(columns) else f"row {i - len(columns)}|{i - len(columns) + 1}"
    return float(jumps[i] / np.median(jumps)), where


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "maps")
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--side", type=int, default=286)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--figure", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    aerial, target = mosaic(args.data, args.grid, args.side)
    real = np.asarray(target, float)
    image_stats = Translator.from_checkpoint(BUNDLED, device="cpu", engine="torch")
    running_stats = Translator.from_checkpoint(BUNDLED, device="cpu", engine="torch", batch_norm="running")
    start = time.perf_counter()
    whole = image_stats.translate(aerial, tiling=Tiling(0))
    whole_s = time.perf_counter() - start
    reference = np.asarray(whole, float)
    print(f"{aerial.width}x{aerial.height} mosaic of {args.grid * args.grid} maps val images at {args.side} px; "
          f"whole: {whole_s:.1f} s, |output - map| {np.abs(reference - real).mean():.2f}")
    print("| statistics | |tiled - whole| | |output - map| | seam ratio | s |")
    print("|---|---|---|---|---|")
    outputs = {"whole": whole}
    variants = [(s, image_stats, s) for s in TILE_STATISTICS] + [("running (BatchNorm eval mode)", running_stats, "per-tile")]
    for name, translator, statistics in variants:
        tiling = Tiling(args.tile, args.overlap, statistics)
        start = time.perf_counter()
        out = translator.translate(aerial, tiling=Tiling(args.tile, args.overlap, statistics))
        seconds = time.perf_counter() - start
        pixels = np.asarray(out, float)
        outputs[name] = out
        print(f"| {name} | {np.abs(pixels - reference).mean():.2f} | {np.abs(pixels - real).mean():.2f} | "
              f"{seam_ratio(pixels, reference, tiling.validate(256)):.3f} | {seconds:.1f} |", flush=True)
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    jump, where = sharpest_jump(reference)
    print(f"\nImage edges (last 3 rows and columns) against the whole translation; whole's sharpest jump "
          f"{jump:.2f}x the median, at {where}")
    print("| statistics | |tiled - whole| last 3 rows/columns | inside them | sharpest jump (x median), at |")
    print("|---|---|---|---|")
    for name, out in outputs.items():
        if name != "whole":
            edge, inside = edge_band_difference(np.asarray(out, float), reference)
            jump, where = sharpest_jump(np.asarray(out, float))
            print(f"| {name} | {edge:.2f} | {inside:.2f} | {jump:.2f}, {where} |")
    if not args.figure:
        return
    thumbs = [aerial, target, outputs["whole"], outputs["pooled"], outputs["per-tile"]]
    side = 572
    figure = Image.new("RGB", (side * len(thumbs), side), "white")
    for i, im in enumerate(thumbs):
        figure.paste(im.resize((side, side), Image.BICUBIC), (i * side, 0))
    out_path = ROOT / "benchmarks" / "figures" / "tiling_mosaic.jpg"
    out_path.parent.mkdir(exist_ok=True)
    figure.save(out_path, quality=85)
    print(f"figure: {out_path.relative_to(ROOT)} (aerial | real map | whole | tiled, pooled | tiled, per-tile)")


if __name__ == "__main__":
    main()
