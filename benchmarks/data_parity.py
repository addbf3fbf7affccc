"""The same files through the canonical code's datasets and ours, with the same crop offsets and
flips, compared tensor for tensor: how many 8-bit levels apart, and where.

    python benchmarks/data_parity.py [--paired ../shared/datasets/maps] [--unpaired ../shared/datasets/monet2photo]
                                     [--images 20]

Ours draws each sample's crop and flip (albumentations, seeded by the sample); they are read back
from what it applied and handed to the reference in place of its own draws: for aligned (A|B)
data, its `get_params`; for unaligned data, whose crops and flips are torchvision's own random
transforms, a `get_transform` built from those params for each image, and the B image ours
picked in place of its `random.randint`. Each --preprocess mode both take.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

import albumentations as A
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import import_reference

ROOT = Path(__file__).resolve().parents[1]
# --preprocess mode -> (load size, crop size).
MODES = {"resize_and_crop": (286, 256), "crop": (286, 256), "scale_width": (256, 256),
         "scale_width_and_crop": (286, 256)}


def reference_options(data: Path, mode: str, load: int, crop: int, flip: bool, model: str = "pix2pix"):
    builder, _ = import_reference("jz")
    with contextlib.redirect_stdout(sys.stderr):
        return builder.build_reference_opt(model, 1, crop, torch.device("cpu"),
                                           ["--dataroot", str(data), "--preprocess", mode, "--load_size", str(load),
                                            "--crop_size", str(crop), *([] if flip else ["--no_flip"])])


def reference_dataset(data: Path, mode: str, load: int, crop: int, flip: bool):
    opt = reference_options(data, mode, load, crop, flip)
    aligned = importlib.import_module("data.aligned_dataset")
    return aligned, aligned.AlignedDataset(opt)


def reporting_transform(mode: str, load: int, crop: int, flip: bool):
    """Our training transform, made to report the crop and the flip it applied."""
    from img2img.config import DataConfig
    from img2img.data.transforms import train_transform

    steps = train_transform(DataConfig(preprocess=mode, load_size=load, size=crop, flip=flip))
    return A.Compose(list(steps.transforms), additional_targets={"image_b": "image"}, save_applied_params=True)


def our_dataset(data: Path, mode: str, load: int, crop: int, flip: bool):
    from img2img.data.paired import PairedDataset

    return PairedDataset(data / "train", reporting_transform(mode, load, crop, flip), seed=0)


def applied(transform_result: dict, default_crop: tuple[int, int]) -> tuple[tuple[int, int], bool]:
    crop, flip = default_crop, False
    for name, params in transform_result["applied_transforms"]:
        if "crop_coords" in params:
            crop = tuple(params["crop_coords"][:2])
        if name == "HorizontalFlip":
            flip = True
    return crop, flip


def record_applied(dataset) -> list:
    """Wrap the dataset's transform so that each call's (crop offset, flip) is recorded, in order."""
    recorded, transform = [], dataset.transform

    def recording(**kwargs):
        out = transform(**kwargs)
        recorded.append(applied(out, (0, 0)))
        return out

    dataset.transform = recording
    dataset.transform.set_random_seed = transform.set_random_seed
    return recorded


class Levels:
    """How far our tensors are from the reference's, in 8-bit levels."""

    def __init__(self) -> None:
        self.worst, self.total, self.over, self.values = 0.0, 0.0, 0, 0

    def add(self, ours: torch.Tensor, theirs: torch.Tensor) -> None:
        levels = (ours - theirs).abs() * 127.5
        self.worst = max(self.worst, levels.max().item())
        self.total += levels.sum().item()
        self.over += int((levels > 0.5).sum())
        self.values += levels.numel()

    def report(self) -> dict:
        return {"largest_levels": round(self.worst, 3), "mean_levels": self.total / self.values,
                "values_over_half_a_level": self.over, "values": self.values}


def compare(data: Path, mode: str, images: int, flip: bool, sizes: tuple[int, int] | None = None) -> dict:
    """Aligned data. `sizes`: (load size, crop size), by default MODES's."""
    load, crop = sizes or MODES[mode]
    aligned, ref = reference_dataset(data, mode, load, crop, flip)
    ours = our_dataset(data, mode, load, crop, flip)
    recorded = record_applied(ours)
    levels, flips = Levels(), 0
    for index in range(min(images, len(ours))):
        item = ours[(0, index)]
        (x, y), flipped = recorded.pop()
        flips += flipped
        aligned.get_params = lambda opt, size, x=x, y=y, flipped=flipped: {"crop_pos": (x, y), "flip": flipped}
        theirs = ref[index]
        assert Path(theirs["A_paths"]).name == Path(item["path"]).name
        for side in ("A", "B"):
            levels.add(item[side], theirs[side])
    return {"dataset": "aligned", "mode": mode, "flip": flip, "images": min(images, len(ours)), "flipped": flips,
            **levels.report()}


def compare_unaligned(data: Path, mode: str, images: int, flip: bool, sizes: tuple[int, int] | None = None) -> dict:
    """Unaligned data (trainA, trainB): each A with the B image ours drew, each transformed with
    its own crop and flip."""
    from img2img.data.unpaired import UnpairedDataset

    load, crop = sizes or MODES[mode]
    opt = reference_options(data, mode, load, crop, flip, model="cycle_gan")
    unaligned, base = (importlib.import_module(f"data.{name}") for name in ("unaligned_dataset", "base_dataset"))
    ref = unaligned.UnalignedDataset(opt)
    ours = UnpairedDataset(data / "trainA", data / "trainB", reporting_transform(mode, load, crop, flip), seed=0)
    recorded = record_applied(ours)
    picked = []  # the items ours read, A then B
    conform = ours.conform
    ours.conform = lambda side, array, item: picked.append(item) or conform(side, array, item)
    levels, flips = Levels(), 0
    original_randint = unaligned.random.randint
    try:
        for index in range(min(images, len(ours))):
            item = ours[(0, index)]
            (item_a, item_b), ((xa, ya), flip_a), ((xb, yb), flip_b) = picked[-2:], recorded[-2], recorded[-1]
            flips += flip_a + flip_b
            unaligned.random.randint = lambda low, high, b=str(item_b.path): ref.B_paths.index(b)
            ref.transform_A = base.get_transform(opt, {"crop_pos": (xa, ya), "flip": flip_a})
            ref.transform_B = base.get_transform(opt, {"crop_pos": (xb, yb), "flip": flip_b})
            theirs = ref[index]
            assert (theirs["A_paths"], theirs["B_paths"]) == (str(item_a.path), str(item_b.path))
            for side in ("A", "B"):
                levels.add(item[side], theirs[side])
    finally:
        unaligned.random.randint = original_randint
    return {"dataset": "unaligned", "mode": mode, "flip": flip, "images": min(images, len(ours)),
            "flipped": flips, **levels.report()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paired", default=str(ROOT.parent / "shared" / "datasets" / "maps"))
    parser.add_argument("--unpaired", default=str(ROOT.parent / "shared" / "datasets" / "monet2photo"))
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    print("| dataset | --preprocess | flip | images (flipped) | largest difference (levels) | mean (levels) | "
          "values over ½ level |")
    print("|---|---|---|---|---|---|---|")
    for run, data in ((compare, args.paired), (compare_unaligned, args.unpaired)):
        for mode in MODES:
            for flip in (False, True):
                r = run(Path(data), mode, args.images, flip)
                print(f"| {r['dataset']} ({Path(data).name}) | {r['mode']} | {'on' if flip else 'off'} | {r['images']} "
                      f"({r['flipped']}) | {r['largest_levels']} | {r['mean_levels']:.4f} | "
                      f"{r['values_over_half_a_level']} of {r['values']} |", flush=True)


if __name__ == "__main__":
    main()
