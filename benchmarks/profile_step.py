"""Where a training step's time goes, and how many operators and layout copies it dispatches:
torch.profiler over full steps (both updates, random inputs, the papers' default models), ours
or the canonical code's (`--canonical jz|cut`, from ../shared/reference, in this process).

    python benchmarks/profile_step.py --model cyclegan --size 256 --batch-size 1 --steps 2
    python benchmarks/profile_step.py --canonical jz --model cyclegan --size 256 --steps 2

Prints one JSON line: wall and kernel (device; on the CPU operator self) time per step, that
time by family, top-level and all aten operators per step, `aten::copy_` and
`aten::contiguous` calls per step, and on CUDA the kernel launches per step.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from img2img.methods import new_run_config
from img2img.methods.base import memory_format
from img2img.training.guard import guarded_step

FAMILIES = [
    ("copy", ("copy", "contiguous", "clone", "to_copy")),
    ("convolution", ("conv", "cudnn", "gemm", "mkldnn", "xmma", "sm80", "sm90", "wgrad", "dgrad")),
    ("normalisation", ("norm", "welford")),
    ("optimizer", ("adam", "_fused", "foreach", "multi_tensor")),
    ("padding", ("pad", "reflection", "replication")),
    ("elementwise", ("elementwise", "vectorized", "reduce", "add", "mul", "sub", "div", "relu", "tanh", "leaky",
                     "threshold", "where", "fill", "sum", "mean", "abs", "sign", "mse", "l1", "binary_cross", "exp",
                     "log", "sqrt", "lerp")),
]
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def family_of(name: str) -> str:
    lowered = name.lower()
    for family, needles in FAMILIES:
        if any(n in lowered for n in needles):
            return family
    return "other"


@dataclasses.dataclass
class StepProfile:
    wall_ms: float
    kernel_ms: float
    top_level_ops: int
    all_ops: int
    copies: int
    contiguous: int
    kernels: int
    by_family: dict[str, float]  # percent of kernel time

    def row(self) -> dict:
        return dataclasses.asdict(self)


def _top_level(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True


def profile_step(step: Callable[[], object], device: torch.device, steps: int = 2) -> StepProfile:
    """Profile `steps` calls of `step` (after one untimed call), per step."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    step()
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        wall = time.perf_counter() - start
    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    if device.type == "cuda":
        timed = [(e.name, e.device_time) for e in events if e.device_type == DeviceType.CUDA]
    else:
        timed = [(e.name, e.self_cpu_time_total) for e in aten]
    total = sum(t for _, t in timed) or 1.0
    families: dict[str, float] = defaultdict(float)
    for name, t in timed:
        families[family_of(name)] += t
    return StepProfile(
        wall_ms=round(1e3 * wall / steps, 2),
        kernel_ms=round(total / 1e3 / steps, 2),
        top_level_ops=sum(_top_level(e) for e in aten) // steps,
        all_ops=len(aten) // steps,
        copies=sum(e.name == "aten::copy_" for e in aten) // steps,
        contiguous=sum(e.name == "aten::contiguous" for e in aten) // steps,
        kernels=len(timed) // steps if device.type == "cuda" else 0,
        by_family={k: round(100 * v / total, 1) for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
    )


def our_step(model: str, size: int, batch_size: int, device: torch.device, speed=None,
             architecture: dict | None = None) -> Callable[[], object]:
    """One guarded training step of our `model` (the paper's defaults, or with `architecture`'s
    ModelConfig fields) on fixed random inputs."""
    from img2img.config import SpeedConfig, TrainConfig
    from img2img.methods import build_method
    from img2img.models import fit_to_size

    torch.manual_seed(0)
    cfg = new_run_config(model, train=TrainConfig(device=str(device), speed=speed or SpeedConfig()))
    cfg.model = fit_to_size(dataclasses.replace(cfg.model, **(architecture or {})), size)
    cfg.data.batch_size = batch_size
    method = build_method(cfg, device)
    method.train()
    batch = {k: (torch.rand(batch_size, 3, size, size, device=device) * 2 - 1).contiguous(
        memory_format=memory_format(method.speed)) for k in "AB"}
    return lambda: guarded_step(method, batch)


def canonical_step(impl: str, model: str, size: int, batch_size: int, device: torch.device,
                   extra: list[str] = ()) -> Callable[[], object]:
    """One `optimize_parameters()` of the canonical code, built as its train.py builds it (through
    ../shared/reference/bench_reference.py). Its modules are imported here, so one per process."""
    sys.argv = [sys.argv[0], "--impl", impl]
    sys.path.insert(0, str(REFERENCE))
    import bench_reference as ref  # noqa: E402  (reads --impl from argv when imported)

    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):
        from models import create_model

        opt = ref.build_reference_opt("cycle_gan" if model == "cyclegan" else model, batch_size, size, device,
                                      list(extra))
        net = create_model(opt)
        first = {k: torch.rand(batch_size, 3, size, size) * 2 - 1 for k in "AB"}
        first.update(A_paths=["r.jpg"] * batch_size, B_paths=["r.jpg"] * batch_size)
        if hasattr(net, "data_dependent_initialize"):
            net.data_dependent_initialize(first)
        net.setup(opt)
        net.set_input(first)

    def step():
        with contextlib.redirect_stdout(sys.stderr):
            net.optimize_parameters()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cyclegan", choices=["pix2pix", "cyclegan", "cut"])
    parser.add_argument("--canonical", choices=["jz", "cut"], help="profile the canonical code instead of ours")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    args, extra = parser.parse_known_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.canonical:
        step = canonical_step(args.canonical, args.model, args.size, args.batch_size, device, extra)
    else:
        from img2img.config import SpeedConfig
        step = our_step(args.model, args.size, args.batch_size, device,
                        SpeedConfig(amp=args.amp, channels_last=args.channels_last))
    result = profile_step(step, device, args.steps)
    print(json.dumps({"code": args.canonical or "img2img", "model": args.model, "size": args.size,
                      "batch_size": args.batch_size, "device": str(device), **result.row()}))


if __name__ == "__main__":
    main()
