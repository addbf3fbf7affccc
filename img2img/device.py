"""This process's device, seed and place among torchrun's ranks."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from .errors import Img2ImgError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise Img2ImgError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise Img2ImgError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_deterministic_algorithms() -> None:
    """Bitwise-reproducible CUDA runs: deterministic algorithms (an operator without a
    deterministic CUDA kernel raises instead of varying) and cuDNN without autotuning. cuBLAS
    reads its workspace setting at its first use, so this must run before any CUDA work."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@dataclass(frozen=True)
class Ranks:
    """torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them a process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Ranks":
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """`resolve_device(name)`, with this rank's own GPU when there are several ranks."""
        device = resolve_device(name)
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device
