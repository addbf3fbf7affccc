"""Where a training step's time goes: torch.profiler over full steps of a method (random inputs,
the papers' default model), grouped into convolutions, normalisation, elementwise work,
optimizer and the rest, plus the top operators.

    python benchmarks/profile_step.py --model cyclegan --size 256 --steps 2
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from img2img.config import RunConfig, TrainConfig
from img2img.device import resolve_device
from img2img.methods import METHODS, build_method
from img2img.models import fit_to_size

GROUPS = [
    ("convolution", ("conv", "mkldnn")),
    ("normalisation", ("instance_norm", "batch_norm", "native_batch_norm", "_batch_norm")),
    ("optimizer", ("adam", "_fused", "foreach")),
    ("padding", ("pad", "reflection", "replication")),
    ("elementwise", ("add", "mul", "sub", "div", "relu", "tanh", "leaky", "threshold", "where", "copy", "fill",
                     "clone", "sum", "mean", "abs", "sign", "mse", "l1", "binary_cross", "exp", "log", "sqrt")),
]


def group_of(name: str) -> str:
    lowered = name.lower()
    for group, needles in GROUPS:
        if any(n in lowered for n in needles):
            return group
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cyclegan", choices=list(METHODS))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    cfg = RunConfig.for_method(args.model, train=TrainConfig(device=str(device)))
    cfg.model = fit_to_size(cfg.model, args.size)
    method = build_method(cfg, device)
    batch = {k: torch.rand(1, 3, args.size, args.size, device=device) * 2 - 1 for k in ("A", "B")}
    method.guarded_step(batch)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            method.guarded_step(batch)
    # Self time, so nested operators are not counted twice.
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    by_group: dict[str, float] = defaultdict(float)
    for e in events:
        by_group[group_of(e.key)] += e.self_cpu_time_total
    print(f"{args.model} {args.size}px on {device}: {total / 1e6 / args.steps:.2f} s of operator self time per step")
    for group, t in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"  {group:14s} {100 * t / total:5.1f}%")
    print(f"top {args.top} operators by self time:")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(f"  {e.key:48s} {100 * e.self_cpu_time_total / total:5.1f}%  calls {e.count}")


if __name__ == "__main__":
    main()
