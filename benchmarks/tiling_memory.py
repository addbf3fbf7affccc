"""Peak memory of translating one large image, whole or in tiles, with the bundled model on the CPU.

    python benchmarks/tiling_memory.py --size 4096 --tile 512     # tiles
    python benchmarks/tiling_memory.py --size 2048 --tile 0       # whole

Prints how much the process's peak RSS grew during the translation (input and output images
included), and the wall-clock. Run each setting in its own process: peak RSS never goes down.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from PIL import Image

from img2img.translate.tiling import Tiling
from img2img.translate.translator import Translator

BUNDLED = Path(__file__).resolve().parents[1] / "checkpoints" / "maps_aerial2map" / "model.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512, help="0: whole")
    parser.add_argument("--overlap", type=int, default=64)
    args = parser.parse_args()
    translator = Translator.from_checkpoint(BUNDLED, device="cpu", engine="torch")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    translator.translate(image, tiling=Tiling(args.tile, args.overlap))
    seconds = time.perf_counter() - start
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    how = f"{args.tile} px tiles, overlap {args.overlap}" if args.tile else "whole"
    print(f"{args.size}x{args.size}, {how}: peak RSS +{growth:.0f} MB, {seconds:.1f} s")


if __name__ == "__main__":
    main()
