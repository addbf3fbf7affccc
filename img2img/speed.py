"""The fast path: switches that change how fast a step runs, never what it computes
(up to bf16 rounding). `TrainConfig` holds what the user asked for; `SpeedSettings` is what
applies on a given device."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .config import TrainConfig


@dataclass(frozen=True)
class SpeedSettings:
    # bf16 autocast for the networks; losses stay fp32.
    amp: bool = False
    channels_last: bool = False
    # torch.compile of each network; `cuda_graphs` compiles with mode="reduce-overhead",
    # which replays captured CUDA graphs (fewer launches at small batch).
    compile: bool = False
    cuda_graphs: bool = False
    # One fused kernel per optimizer; it also lets a non-finite step be skipped on the device.
    fused_adam: bool = True
    cudnn_benchmark: bool = False

    @classmethod
    def resolve(cls, train: TrainConfig, device: torch.device) -> "SpeedSettings":
        """Unset switches take the measured default for the device (benchmarks/RESULTS.md)."""
        cuda = device.type == "cuda"
        return cls(
            amp=cuda if train.amp is None else train.amp,
            channels_last=cuda if train.channels_last is None else train.channels_last,
            compile=train.compile or (train.cuda_graphs and cuda),
            cuda_graphs=train.cuda_graphs and cuda,
            fused_adam=train.fused_adam,
            cudnn_benchmark=train.cudnn_benchmark and cuda,
        )

    @property
    def compile_mode(self) -> str:
        return "reduce-overhead" if self.cuda_graphs else "default"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply_globally(self) -> None:
        if self.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True

    def describe(self) -> str:
        on = [f.name for f in dataclasses.fields(self) if getattr(self, f.name)]
        return ", ".join(on) if on else "plain fp32 eager"
