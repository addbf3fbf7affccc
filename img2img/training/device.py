from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import Img2ImgError


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
