"""The same files through the canonical code's dataset and ours, with the same crop offsets and
flips, compared tensor for tensor: how many 8-bit levels apart, and where.

    python benchmarks/data_parity.py [--data ../shared/datasets/maps] [--images 20]

Ours draws each sample's crop and flip (albumentations, seeded by the sample); they are read back
from what it applied and handed to the reference's dataset in place of its own draws
(`get_params`). Aligned (paired A|B) data, in each --preprocess mode both take. Status (issue 52):
the unaligned dataset is not compared yet.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

import albumentations as A
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
# --preprocess mode -> (load size, crop size).
MODES = {"resize_and_crop": (286, 256), "crop": (286, 256), "scale_width": (256, 256),
         "scale_width_and_crop": (286, 256)}


def reference_dataset(data: Path, mode: str, load: int, crop: int, flip: bool):
    argv, sys.argv = sys.argv, [sys.argv[0], "--impl", "jz"]
    if str(REFERENCE) not in sys.path:
        sys.path.insert(0, str(REFERENCE))
    try:
        builder = importlib.import_module("bench_reference")
    finally:
        sys.argv = argv
    aligned = importlib.import_module("data.aligned_dataset")
    with contextlib.redirect_stdout(sys.stderr):
        opt = builder.build_reference_opt("pix2pix", 1, crop, torch.device("cpu"),
                                          ["--dataroot", str(data), "--preprocess", mode, "--load_size", str(load),
                                           "--crop_size", str(crop), *([] if flip else ["--no_flip"])])
    return aligned, aligned.AlignedDataset(opt)


def our_dataset(data: Path, mode: str, load: int, crop: int, flip: bool):
    from img2img.config import DataConfig
    from img2img.data.paired import PairedDataset
    from img2img.data.transforms import train_transform

    config = DataConfig(preprocess=mode, load_size=load, size=crop, flip=flip)
    steps = train_transform(config)
    # The same steps, made to report the crop and the flip they applied.
    transform = A.Compose(list(steps.transforms), additional_targets={"image_b": "image"}, save_applied_params=True)
    return PairedDataset(data / "train", transform, seed=0)


def applied(transform_result: dict, default_crop: tuple[int, int]) -> tuple[tuple[int, int], bool]:
    crop, flip = default_crop, False
    for name, params in transform_result["applied_transforms"]:
        if "crop_coords" in params:
            crop = tuple(params["crop_coords"][:2])
        if name == "HorizontalFlip":
            flip = True
    return crop, flip


def compare(data: Path, mode: str, images: int, flip: bool, sizes: tuple[int, int] | None = None) -> dict:
    """`sizes`: (load size, crop size), by default MODES's."""
    load, crop = sizes or MODES[mode]
    aligned, ref = reference_dataset(data, mode, load, crop, flip)
    ours = our_dataset(data, mode, load, crop, flip)
    recorded = {}
    transform = ours.transform

    def recording(**kwargs):
        out = transform(**kwargs)
        recorded["params"] = applied(out, (0, 0))
        return out

    ours.transform = recording
    ours.transform.set_random_seed = transform.set_random_seed
    worst, total, over, pixels = 0.0, 0.0, 0, 0
    flips = 0
    for index in range(min(images, len(ours))):
        item = ours[(0, index)]
        (x, y), flipped = recorded["params"]
        flips += flipped
        aligned.get_params = lambda opt, size, x=x, y=y, flipped=flipped: {"crop_pos": (x, y), "flip": flipped}
        theirs = ref[index]
        assert Path(theirs["A_paths"]).name == Path(item["path"]).name
        for side in ("A", "B"):
            levels = (item[side] - theirs[side]).abs() * 127.5
            worst = max(worst, levels.max().item())
            total += levels.sum().item()
            over += int((levels > 0.5).sum())
            pixels += levels.numel()
    return {"mode": mode, "flip": flip, "images": min(images, len(ours)), "flipped": flips,
            "largest_levels": round(worst, 3), "mean_levels": total / pixels, "values_over_half_a_level": over,
            "values": pixels}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "maps"))
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    print("| --preprocess | flip | images (flipped) | largest difference (levels) | mean (levels) | values over ½ level |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        for flip in (False, True):
            r = compare(Path(args.data), mode, args.images, flip)
            print(f"| {r['mode']} | {'on' if flip else 'off'} | {r['images']} ({r['flipped']}) | {r['largest_levels']} | "
                  f"{r['mean_levels']:.4f} | {r['values_over_half_a_level']} of {r['values']} |", flush=True)


if __name__ == "__main__":
    main()
