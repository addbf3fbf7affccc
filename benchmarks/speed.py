"""The fast-path ladder: `img2img bench` for fp32 eager, then each optimisation added, at
several batch sizes; prints a markdown table (images/s, peak memory, % of measured peak).

    python benchmarks/speed.py --model pix2pix --device cpu --batch-sizes 1 4 --steps 5
    python benchmarks/speed.py --model cyclegan --device cuda --batch-sizes 1 8 32 --steps 20

Each configuration runs in its own process, so peak memory (CUDA peak allocation, or the
process's peak RSS on CPU) belongs to that configuration alone.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from img2img.methods import METHODS

# Each rung adds one switch to the one before; the first is the canonical fp32 eager step.
LADDER = [
    ("fp32 eager", ["--no-fused-adam", "--no-channels-last", "--no-amp", "--no-compile"]),
    ("+ fused Adam", ["--fused-adam", "--no-channels-last", "--no-amp", "--no-compile"]),
    ("+ channels_last", ["--fused-adam", "--channels-last", "--no-amp", "--no-compile"]),
    ("+ bf16 autocast", ["--fused-adam", "--channels-last", "--amp", "--no-compile"]),
    ("+ torch.compile", ["--fused-adam", "--channels-last", "--amp", "--compile"]),
    ("+ CUDA graphs", ["--fused-adam", "--channels-last", "--amp", "--compile", "--cuda-graphs"]),
    ("device default", []),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="pix2pix", choices=list(METHODS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rungs", nargs="+", help="names of LADDER rungs to run (default all)")
    args = parser.parse_args()
    print("| configuration | batch | images/s | ms/step | peak memory MB | TFLOP/s | % of matmul peak |")
    print("|---|---|---|---|---|---|---|")
    for name, flags in LADDER:
        if args.rungs and name not in args.rungs:
            continue
        if "--cuda-graphs" in flags and args.device == "cpu":
            continue
        for batch in args.batch_sizes:
            cmd = [sys.executable, "-m", "img2img", "bench", "--model", args.model, "--device", args.device,
                   "--size", str(args.size), "--batch-size", str(batch), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), *flags, "--json"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"| {name} | {batch} | failed: {run.stderr.strip().splitlines()[-1][:80]} | | | | |", flush=True)
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"| {name} | {batch} | {r['images_per_s']:.3f} | {r['sec_per_iter'] * 1e3:.0f} | "
                  f"{r['peak_mem_mb']:.0f} | {r['achieved_tflops']:.3f} | {r['percent_of_peak']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
