"""Our training step against the reference implementation's, timed alternately in one run on
the same machine, with the ratio (reference s/iter ÷ ours: above 1 means we are faster).

    python benchmarks/vs_reference.py --models cyclegan cut fastcut --size 256 --steps 3 --rounds 2
    python benchmarks/vs_reference.py --models unsb --size 256 --steps 10 --rounds 1

CUT and FastCUT run with anti-aliased sampling on both sides (both defaults); --no-antialias
turns it off on both (the reference's --no_antialias --no_antialias_up).

The reference is ../shared/reference/bench_reference.py (the canonical pix2pix/CycleGAN code,
or the CUT code), built as its own train.py builds it; ours is `img2img bench`. Each timing
is its own process; rounds alternate ours and the reference so that drift in the machine's
speed hits both.

UNSB's reference (the UNSB code, which bench_reference.py does not build) is built in this
process as benchmarks/parity.py builds it, from the same weights, and the two steps alternate
step by step on the same batch and the same seed, so that both draw the same time steps (a
step's cost grows with its time step: up to 15 generator passes simulate the bridge). Its mean
over --steps steps is reported (seeds 10,000 on: time steps 0, 0, 1, 0, 2, 2, 3, 0, 4, 1).
"""
from __future__ import annotations

import argparse
import contextlib
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
    "unsb": [],  # built in this process (unsb_side_by_side)
}


def unsb_side_by_side(size: int, steps: int, warmup: int, threads: int) -> tuple[list, list, dict]:
    """(our seconds per step, the reference's, their GFLOP on the step of seed 10,004 (time step 2))."""
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import parity

    torch.set_num_threads(threads)
    ref, opt = parity.reference_model("unsb", size, 0)
    ours, _ = parity.our_method("unsb", opt, fused_adam=True)
    parity.copy_weights(ours, ref, "unsb")
    ours.train()
    g = torch.Generator().manual_seed(1)
    a, b, a2, b2 = (torch.rand((1, 3, size, size), generator=g) * 2 - 1 for _ in range(4))
    paths = {"A_paths": ["a.png"], "B_paths": ["b.png"]}

    def our_step():
        ours.training_step({"A": a, "B": b, "A2": a2})

    def their_step():
        with parity.cuda_calls_stay_on_the_cpu(), contextlib.redirect_stdout(sys.stderr):
            ref.set_input({"A": a, "B": b, **paths}, {"A": a2, "B": b2, **paths})
            ref.optimize_parameters()

    times: dict[str, list[float]] = {"ours": [], "ref": []}
    for i in range(warmup + steps):
        for name, step in (("ours", our_step), ("ref", their_step)):
            torch.manual_seed(10_000 + i)
            start = time.perf_counter()
            step()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    flops = {}
    for name, step in (("ours", our_step), ("ref", their_step)):
        torch.manual_seed(10_004)
        with FlopCounterMode(display=False) as counter:
            step()
        flops[name] = counter.get_total_flops()
    return times["ours"], times["ref"], flops


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
        if model == "unsb":
            ours, ref, flops = unsb_side_by_side(args.size, args.steps, args.warmup, args.threads)
            o_s, r_s = statistics.mean(ours), statistics.mean(ref)
            print(f"| unsb (mean of {len(ours)} steps) | {o_s:.2f} | {r_s:.2f} | **{r_s / o_s:.2f}×** | "
                  f"{flops['ours'] / 1e9:.1f} | {flops['ref'] / 1e9:.1f} |", flush=True)
            continue
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
