"""Weight initialisation: N(0, 0.02) as in the pix2pix/CycleGAN papers, or Xavier with gain
0.02 as in CUT."""
from __future__ import annotations

from typing import Literal

from torch import nn


def init_weights(module: nn.Module, std: float = 0.02, kind: Literal["normal", "xavier"] = "normal") -> nn.Module:
    """Conv and linear weights from N(0, std) or Xavier-normal with gain `std`; zero biases;
    BatchNorm scales from N(1, std)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=std)
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module
