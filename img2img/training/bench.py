"""`img2img bench`: time full training steps (both networks' updates) on random inputs.

The models are the papers' defaults, so figures compare with the canonical code's. FLOPs are
counted with torch.utils.flop_counter on one eager step; `peak_tflops` is a dense matrix
product measured on the same device in the step's precision, the ceiling the step is held to.
"""
from __future__ import annotations

import dataclasses
import functools
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import SpeedConfig, TrainConfig
from ..device import resolve_device
from ..methods import METHODS, build_method, new_run_config
from ..methods.base import memory_format
from ..models import fit_to_size
from .cuda_graph import WARMUP_STEPS, CapturedStep, check_capturable
from .guard import guarded_step
from .resume import apply_overrides, apply_recipe


@dataclass
class BenchSettings:
    model: str = "pix2pix"
    size: int = 256
    batch_size: int = 1
    steps: int = 20
    warmup: int = 3
    device: str = "auto"
    seed: int = 0
    # None: the method's default generator.
    antialias: bool | None = None
    # A named preset of the method's settings (e.g. pix2pix's "improved"); None: its defaults.
    recipe: str | None = None
    # Unset switches take the device default, as in training.
    speed: SpeedConfig = dataclasses.field(default_factory=SpeedConfig)
    # ModelConfig fields to change from the paper's (e.g. {"ngf": 8} for a quick check).
    architecture: dict = dataclasses.field(default_factory=dict)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # The process's peak resident set (Linux reports KiB), model and framework included.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_precision(device: torch.device, amp: bool) -> str:
    """The precision the step's convolutions run in: bf16 under amp, else TF32 where cuDNN may use
    it (PyTorch's default on CUDA), else fp32. A step's "% of peak" is against that precision's
    peak; a strict fp32 peak would put TF32 convolutions above 100%."""
    if amp:
        return "bf16"
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


def matmul_tflops(device: torch.device, precision: str, n: int = 4096, repeats: int = 5) -> float:
    """Measured dense matrix-product rate in `precision`: the practical peak for convolution-heavy steps."""
    if device.type == "cpu":  # CPUs without bf16 units take minutes over a large bf16 product
        n = 1536 if precision == "fp32" else 512
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        a @ b
        synchronize(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            synchronize(device)
            times.append(time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return 2 * n**3 / statistics.median(times) / 1e12


def run_benchmark(s: BenchSettings, log: Callable[[str], None] = print) -> dict:
    device = resolve_device(s.device)
    torch.manual_seed(s.seed)
    cfg = new_run_config(s.model, train=TrainConfig(device=str(device), speed=s.speed))
    if s.recipe is not None:
        overrides = {"method_config": {"recipe": s.recipe}}
        apply_recipe(s.model, s.recipe, overrides)
        cfg = apply_overrides(cfg, overrides)
    if s.antialias is not None:
        cfg.model.antialias = cfg.model.antialias_d = s.antialias
    cfg.model = fit_to_size(dataclasses.replace(cfg.model, **s.architecture), s.size)
    speed = s.speed.resolve(device.type, s.batch_size, cfg.model.netG)
    check_capturable(speed, device)
    torch.backends.cudnn.benchmark = speed.cudnn_benchmark
    # FLOPs are counted on an eager step, so the method is compiled only after it.
    method = build_method(cfg, device, dataclasses.replace(speed, compile=False))
    check_capturable(speed, device, method)
    method.train()
    # Each side with its domain's channels (colourisation: L in, ab out).
    channels = {"A": cfg.model.in_channels, "B": cfg.model.out_channels,
                **({"A2": cfg.model.in_channels} if METHODS[cfg.method].second_source else {})}
    batch = {k: (torch.rand((s.batch_size, c, s.size, s.size), device=device) * 2 - 1)
             .contiguous(memory_format=memory_format(speed)) for k, c in channels.items()}

    with FlopCounterMode(display=False) as counter:
        guarded_step(method, batch)
    flops = counter.get_total_flops()
    method.speed = speed
    if speed.compile:
        method.compile_networks()

    step = CapturedStep(method) if speed.cuda_graphs else functools.partial(guarded_step, method)
    # A captured graph's warm-up and capture stay out of the timed steps.
    warmup = max(s.warmup, WARMUP_STEPS + 1) if speed.cuda_graphs else s.warmup
    log(f"bench {s.model} {s.size}px batch {s.batch_size} on {device} ({speed.describe()}): "
        f"{flops / 1e9 / s.batch_size:.1f} GFLOP per image per step; {warmup} warm-up steps")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step(batch)
    synchronize(device)
    times = []
    for _ in range(s.steps):
        start = time.perf_counter()
        _, bad = step(batch)
        synchronize(device)
        times.append(time.perf_counter() - start)
    if bool(bad):
        log("warning: the last step had a non-finite loss")
    sec = statistics.median(times)
    precision = peak_precision(device, speed.amp)
    peak = matmul_tflops(device, precision)
    achieved = flops / sec / 1e12
    return {
        "sec_per_iter": sec,
        "images_per_s": s.batch_size / sec,
        "peak_mem_mb": round(peak_memory_mb(device), 1),
        "flops_per_iter": flops,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "percent_of_peak": 100 * achieved / peak,
        "peak_precision": precision,
        "sec_per_iter_min": min(times),
        "sec_per_iter_max": max(times),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "settings": {**{k: v for k, v in dataclasses.asdict(s).items() if k not in ("speed", "architecture")},
                     **dataclasses.asdict(speed), "netG": cfg.model.netG, "device": str(device)},
    }
