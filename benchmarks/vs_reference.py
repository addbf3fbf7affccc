"""Our training step against the reference implementation's, timed alternately in one run on
the same machine, with the ratio (reference s/iter ÷ ours: above 1 means we are faster).

    python benchmarks/vs_reference.py --models cyclegan cut fastcut --size 256 --steps 3 --rounds 2

CUT and FastCUT run with anti-aliased sampling on both sides (both defaults); --no-antialias
turns it off on both (the reference's --no_antialias --no_antialias_up).

The reference is ../shared/reference/bench_reference.py (the canonical pix2pix/CycleGAN code,
or the CUT code), built as its own train.py builds it; ours is `img2img bench`. Each timing
is its own process; rounds alternate ours and the reference so that drift in the machine's
speed hits both.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bench_reference.py"
# Our method -> the reference's (--impl, --model, extra flags).
REFERENCE_ARGS = {
    "pix2pix": ["--impl", "jz", "--model", "pix2pix"],
    "cyclegan": ["--impl", "jz", "--model", "cycle_gan"],
    "cut": ["--impl", "cut", "--model", "cut"],
    "fastcut": ["--impl", "cut", "--model", "cut", "--CUT_mode", "FastCUT"],
}


def last_json(cmd: list[str]) -> dict:
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["cyclegan", "cut", "fastcut"], choices=list(REFERENCE_ARGS))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=True,
                        help="CUT and FastCUT with anti-aliased sampling on both sides (default, as both "
                             "implementations default); --no-antialias turns it off on both")
    args = parser.parse_args()
    common = ["--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    print("| method | ours s/iter | reference s/iter | ratio (ref ÷ ours) | ours GFLOP/iter | reference GFLOP/iter |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        ours, ref, flops = [], [], {}
        cut_like = model in ("cut", "fastcut")
        antialias = ["--no_antialias", "--no_antialias_up"] if cut_like and not args.antialias else []
        ours_antialias = ["--no-antialias"] if cut_like and not args.antialias else []
        for round_ in range(args.rounds):
            o = last_json([sys.executable, "-m", "img2img", "bench", "--model", model, "--batch-size",
                           str(args.batch_size), *common, *ours_antialias, "--json"])
            r = last_json([sys.executable, str(REFERENCE), *REFERENCE_ARGS[model], *antialias, "--batch", str(args.batch_size),
                           "--threads", str(args.threads), *common, *(["--flops"] if round_ == 0 else [])])
            ours.append(o["sec_per_iter"])
            ref.append(r["median_s_per_iter"])
            flops.setdefault("ours", o["flops_per_iter"])
            flops.setdefault("ref", r.get("flops_per_iter"))
        o_s, r_s = statistics.median(ours), statistics.median(ref)
        ref_flops = f"{flops['ref'] / 1e9:.1f}" if flops["ref"] else "n/a"
        print(f"| {model} | {o_s:.2f} ({', '.join(f'{t:.2f}' for t in ours)}) | {r_s:.2f} "
              f"({', '.join(f'{t:.2f}' for t in ref)}) | **{r_s / o_s:.2f}×** | {flops['ours'] / 1e9:.1f} | {ref_flops} |",
              flush=True)


if __name__ == "__main__":
    main()
