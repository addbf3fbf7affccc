"""How fast the CPU data pipeline delivers training batches (decode, resize, random crop and
flip), against what a GPU step consumes. If this is lower than the step's images/s, the
GPU waits for data.

    python benchmarks/data_loading.py --data ../shared/datasets/maps --workers 0 1 2 --batches 50
"""
from __future__ import annotations

import argparse
import time

from torch.utils.data import DataLoader

from img2img.config import DataConfig, RunConfig
from img2img.data.builders import build_train_dataset
from img2img.data.loader import EpochSampler, collate_skipping_errors
from img2img.methods import METHODS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="pix2pix", choices=list(METHODS))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    cfg = RunConfig.for_method(args.model, data=DataConfig(root=args.data))
    dataset = build_train_dataset(cfg)
    print(f"{len(dataset)} samples in {args.data}, load 286 -> crop 256, batch {args.batch_size}")
    for workers in args.workers:
        sampler = EpochSampler(len(dataset), shuffle=True)
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=workers,
                            collate_fn=collate_skipping_errors, persistent_workers=workers > 0)
        it = iter(loader)
        next(it)  # worker start-up is not throughput
        start, images = time.perf_counter(), 0
        for _ in range(args.batches):
            images += len(next(it)["A"])
        rate = images / (time.perf_counter() - start)
        print(f"workers {workers}: {rate:.1f} images/s ({rate / max(workers, 1):.1f} per process)")


if __name__ == "__main__":
    main()
