"""One picture of the pix2pix ablation: the same 4 val images' aerial input and true map on top,
then one labelled row per variant's outputs (the grids benchmarks/ablation.py saved).

    python benchmarks/ablation_grid.py [GRID ...]    # default: every grid in benchmarks/figures/ablation
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ablation import GRID_IMAGES, ROOT, val_pairs
from PIL import Image, ImageDraw

GRIDS = ROOT / "benchmarks" / "figures" / "ablation"
LABEL_WIDTH = 150


def labelled_row(label: str, pixels: np.ndarray) -> np.ndarray:
    label_panel = Image.new("RGB", (LABEL_WIDTH, pixels.shape[0]), "white")
    ImageDraw.Draw(label_panel).multiline_text((6, 6), label.replace(" ", "\n", 1), fill="black")
    return np.concatenate([np.asarray(label_panel), pixels], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grids", nargs="*", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "maps")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "figures" / "ablation_side_by_side.jpg")
    args = parser.parse_args()
    grids = args.grids or sorted(GRIDS.glob("*.jpg"), key=lambda p: (int(p.stem.rsplit("_", 1)[1]), p.stem))
    pairs = val_pairs(args.data)
    rows = [labelled_row("aerial input", np.concatenate([pairs[i][1] for i in GRID_IMAGES], axis=1)),
            labelled_row("true map", np.concatenate([pairs[i][2] for i in GRID_IMAGES], axis=1))]
    for grid in grids:
        name, seed, steps = grid.stem.rsplit("_", 2)
        rows.append(labelled_row(f"{name} ({seed}, {steps} steps)", np.asarray(Image.open(grid).convert("RGB"))))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out, quality=90)
    print(f"{len(grids)} variants: {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
