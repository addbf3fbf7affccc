"""Speed of FID feature extraction (Inception-V3 pool3, inputs resized to 299 inside the net)
and of the Fréchet distance itself (scipy sqrtm on 2048x2048).

    python benchmarks/fid_features.py [--weights FILE] [--device cpu|cuda] [--images 64] [--size 256]

Without --weights it times a randomly initialised network of the same architecture: the speed
is the same, and no FID value is printed, since with such weights it would not be FID.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from img2img.metrics.fid import build_inception, feature_statistics, frechet_distance  # noqa: E402
from img2img.training import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    device = resolve_device(args.device)
    weights = args.weights
    if weights is None:
        from test_fid import write_random_fid_weights

        weights = write_random_fid_weights(Path(tempfile.mkdtemp()) / "random_inception.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_inception(Path(weights), device)
    x = torch.rand(args.images, 3, args.size, args.size)
    with torch.no_grad():
        model(x[:2].to(device))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        feats = [model(x[i : i + args.batch_size].to(device))[0].flatten(1).cpu() for i in range(0, len(x), args.batch_size)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    print(f"features: {args.images} images of {args.size}px in {elapsed:.2f} s = {args.images / elapsed:.2f} images/s "
          f"on {device} ({torch.get_num_threads()} CPU threads)")
    f = torch.cat(feats).numpy()
    rng = np.random.default_rng(0)
    other = f + rng.normal(0, 0.01, f.shape).astype(f.dtype)
    start = time.perf_counter()
    frechet_distance(*feature_statistics(f), *feature_statistics(other))
    print(f"frechet distance (sqrtm of 2048x2048): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
