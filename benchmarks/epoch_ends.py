"""What epoch ends cost: images/s over whole epochs against images/s inside them, for a small
pix2pix on many short epochs of generated images (CPU by default).

    python benchmarks/epoch_ends.py                     # this checkout
    git worktree add /tmp/before 31f12b8 && python benchmarks/epoch_ends.py --src /tmp/before

Each step is its own metrics window (--log-every 1). A window runs from the end of the previous
one, so the first window of an epoch also holds the previous epoch's end (its checkpoint, its
snapshot, the loader's restart). "Inside" is the images of the other windows over their time;
"whole" is all images over all windows' time, epoch ends included. FID is off (--fid-every 0):
its cost is logged per evaluation by the trainer itself.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_pairs(root: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        a = np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR))
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / "train" / f"{i}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT, help="the img2img source tree to run (default: this one)")
    parser.add_argument("--images", type=int, default=32, help="pairs per epoch")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "run"
        make_pairs(data, args.images, args.size)
        cmd = [sys.executable, "-m", "img2img", "train", "--data", str(data), "--out", str(out),
               "--netG", "unet_64", "--ngf", "16", "--ndf", "16", "--size", str(args.size),
               "--load-size", str(args.size + args.size // 8), "--batch-size", str(args.batch_size),
               "--num-workers", "2", "--epochs", str(args.epochs), "--epochs-decay", "0", "--log-every", "1",
               "--fid-every", "0", "--keep", "2", "--device", args.device]
        env = dict(os.environ, PYTHONPATH=str(args.src))
        subprocess.run(cmd, check=True, cwd=args.src, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get("images_per_s")]
    steps_per_epoch = -(-args.images // args.batch_size)
    seconds = np.array([min(args.batch_size, args.images - (int(r["step"]) - 1) % steps_per_epoch * args.batch_size)
                        / float(r["images_per_s"]) for r in rows])
    images = np.array([min(args.batch_size, args.images - (int(r["step"]) - 1) % steps_per_epoch * args.batch_size)
                       for r in rows])
    first_of_epoch = np.array([(int(r["step"]) - 1) % steps_per_epoch == 0 for r in rows])
    first_of_epoch[0] = False  # the run's first window holds no epoch end
    inside = images[~first_of_epoch].sum() / seconds[~first_of_epoch].sum()
    whole = images.sum() / seconds.sum()
    print(f"source: {args.src}")
    print(f"{args.epochs} epochs of {args.images} pairs at batch {args.batch_size}, {args.size} px, {args.device}")
    print(f"images/s inside epochs: {inside:.1f}")
    print(f"images/s over whole epochs: {whole:.1f} ({100 * whole / inside:.1f}% of inside)")
    print(f"mean cost of an epoch end: {1000 * (seconds[first_of_epoch].mean() - seconds[~first_of_epoch].mean()):.0f} ms")


if __name__ == "__main__":
    main()
