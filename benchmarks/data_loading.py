"""How fast the CPU data pipeline delivers training batches (decode, resize, random crop and
flip), against what a GPU step consumes. If this is lower than the step's images/s, the
GPU waits for data.

    python benchmarks/data_loading.py --data ../shared/datasets/maps --workers 0 1 2 --batches 50

With --formats, it makes the same number of unpaired 256x256 images in each of several formats
in a temporary folder (16-bit one-channel TIFFs, 16-bit one-channel PNGs, and 8-bit RGB JPEGs as
the reference) and measures each:

    python benchmarks/data_loading.py --formats --images 400 --workers 0 2 --batches 20
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from img2img.config import DataConfig, RunConfig
from img2img.data.builders import build_train_dataset
from img2img.data.domain import resolve_formats
from img2img.data.loader import EpochSampler, collate_skipping_errors
from img2img.io.writers import write_image
from img2img.log import log_to_console
from img2img.methods import METHODS, new_run_config

FORMATS = {"16-bit 1-channel TIFF": (".tif", 1, np.uint16), "16-bit 1-channel PNG": (".png", 1, np.uint16),
           "8-bit RGB JPEG": (".jpg", 3, np.uint8)}


def make_images(root: Path, suffix: str, channels: int, dtype, count: int, size: int = 256) -> Path:
    """trainA and trainB of smooth random images (compressible like photos, unlike noise)."""
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for i in range(count):
            small = rng.random((size // 8, size // 8, channels)).astype(np.float32)
            planes = [np.asarray(Image.fromarray(small[..., c], "F").resize((size, size), Image.BILINEAR))
                      for c in range(channels)]
            write_image(root / domain / f"{i}{suffix}", (np.stack(planes, axis=2) * top).astype(dtype))
    return root


def measure(cfg: RunConfig, workers: list[int], batch_size: int, batches: int) -> list[float]:
    dataset = build_train_dataset(cfg, METHODS[cfg.method].dataset_kind)
    resolve_formats(cfg, dataset)
    rates = []
    for n in workers:
        sampler = EpochSampler(len(dataset), shuffle=True)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=n,
                            collate_fn=collate_skipping_errors, persistent_workers=n > 0)
        it = iter(loader)
        next(it)  # worker start-up is not throughput
        start, images = time.perf_counter(), 0
        for _ in range(batches):
            batch = next(it)
            images += len(batch["A"]) + len(batch["B"])
        rates.append(images / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--formats", action="store_true", help="compare 16-bit TIFF and PNG with 8-bit JPEG")
    parser.add_argument("--images", type=int, default=200, help="--formats: images per domain")
    parser.add_argument("--model", default="pix2pix", choices=list(METHODS))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    if args.formats:
        log_to_console()
        print(f"{args.images} 256x256 images per domain, unpaired (A and B both read), load 286 -> crop 256, "
              f"batch {args.batch_size}; images/s counts A and B images")
        with tempfile.TemporaryDirectory() as tmp:
            for name, (suffix, channels, dtype) in FORMATS.items():
                root = make_images(Path(tmp) / suffix.strip("."), suffix, channels, dtype, args.images)
                cfg = new_run_config("cyclegan", data=DataConfig(root=str(root)))
                rates = measure(cfg, args.workers, args.batch_size, args.batches)
                print(f"{name}: " + ", ".join(f"workers {n}: {r:.1f} images/s" for n, r in zip(args.workers, rates)))
        return
    if not args.data:
        parser.error("--data or --formats")
    cfg = new_run_config(args.model, data=DataConfig(root=args.data))
    print(f"{args.data}, load 286 -> crop 256, batch {args.batch_size}")
    for workers, rate in zip(args.workers, measure(cfg, args.workers, args.batch_size, args.batches)):
        print(f"workers {workers}: {rate / 2:.1f} samples/s ({rate / 2 / max(workers, 1):.1f} per process)")


if __name__ == "__main__":
    main()
