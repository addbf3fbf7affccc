"""Weight initialisation, as the canonical code's `--init_type`: N(0, gain) as in the pix2pix and
CycleGAN papers (gain 0.02), Xavier-normal with that gain as in CUT, Kaiming-normal (fan in), or
orthogonal with that gain."""
from __future__ import annotations

from typing import Literal

from torch import nn

from ..config import INIT_TYPES

InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]


def init_weights(module: nn.Module, std: float = 0.02, kind: InitType = "normal") -> nn.Module:
    """Conv and linear weights by `kind` with gain `std`; zero biases; BatchNorm scales from
    N(1, std)."""
    if kind not in INIT_TYPES:
        raise ValueError(f"unknown init type {kind!r}; choose one of {', '.join(INIT_TYPES)}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=std)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif kind == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=std)
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module
