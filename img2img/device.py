"""This process's device, seed and place among the ranks of torchrun or Slurm's srun."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from .errors import Img2ImgError
from .slurm import SlurmTask


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
    """torchrun sets RANK, WORLD_SIZE and LOCAL_RANK, and srun SLURM_PROCID and its kin (see
    slurm.SlurmTask), torchrun's winning; without either a process is rank 0 of 1. `rendezvous`:
    rank 0's address and port under srun (torchrun's own are in its environment)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    rendezvous: tuple[str, int] | None = None

    @classmethod
    def from_env(cls) -> "Ranks":
        if "RANK" not in os.environ and (task := SlurmTask.from_env()) is not None:
            return cls(task.rank, task.world_size, task.local_rank, (task.master_addr, task.master_port))
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
            # srun may show each task only its own GPU(s): the local rank counts among those it sees.
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return device
