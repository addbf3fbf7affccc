"""What re-encoding a paired split would cost: the size of the whole split and the mean absolute
difference from the decoded originals, for a few codecs. Used to decide what to carry to a GPU
machine (64 MiB a call): a sample of the split is encoded, and the size scaled to all of it.

    python benchmarks/reencode_cost.py ../shared/datasets/maps/train --every 20
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from img2img.io.readers import list_images, load_rgb

CODECS = {
    "WebP q90": ("WEBP", {"quality": 90, "method": 6}),
    "WebP q95": ("WEBP", {"quality": 95, "method": 6}),
    "WebP lossless": ("WEBP", {"lossless": True, "method": 4}),
    "JPEG q92 4:4:4": ("JPEG", {"quality": 92, "subsampling": 0}),
    "JPEG q95 4:4:4": ("JPEG", {"quality": 95, "subsampling": 0}),
    "PNG": ("PNG", {"optimize": True}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("split", help="folder of side-by-side pairs (A left, B right)")
    parser.add_argument("--every", type=int, default=20, help="encode every Nth image (default 20)")
    args = parser.parse_args()
    files = list_images(Path(args.split))
    sample = files[::args.every]
    originals = [np.asarray(load_rgb(p)) for p in sample]
    original_mib = sum(p.stat().st_size for p in files) / 2**20
    print(f"{args.split}: {len(files)} images, {original_mib:.1f} MiB as they are; every {args.every}th encoded "
          f"({len(sample)} images); difference in 8-bit levels, A = left half, B = right half")
    for name, (fmt, options) in CODECS.items():
        sizes, diff_a, diff_b = [], [], []
        for pixels in originals:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format=fmt, **options)
            sizes.append(buffer.tell())
            decoded = np.asarray(Image.open(buffer).convert("RGB")).astype(np.int16)
            diff = np.abs(decoded - pixels.astype(np.int16))
            half = pixels.shape[1] // 2
            diff_a.append(diff[:, :half].mean())
            diff_b.append(diff[:, half:].mean())
        print(f"{name:15s} {np.mean(sizes) * len(files) / 2**20:6.1f} MiB  mean |diff| {np.mean(diff_a + diff_b):.3f} "
              f"(A {np.mean(diff_a):.3f}, B {np.mean(diff_b):.3f})")


if __name__ == "__main__":
    main()
