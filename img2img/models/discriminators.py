"""Discriminators. They return logits (no Sigmoid): the losses apply it stably."""
from __future__ import annotations

import torch
from torch import nn

from .norm import conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies each overlapping patch as real or fake.

    n_layers=3 gives the 70x70 receptive field of the pix2pix paper.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            # The last of these keeps the resolution (stride 1), as in the paper's C512 layer.
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel on its own (colour statistics only)."""

    def __init__(self, in_channels: int, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=conv_bias(norm)),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_discriminator(cfg, in_channels: int) -> nn.Module:
    """Build the discriminator a `ModelConfig` describes for inputs of `in_channels`."""
    if cfg.netD == "patch":
        return PatchDiscriminator(in_channels, ndf=cfg.ndf, n_layers=cfg.n_layers_d, norm=cfg.norm)
    if cfg.netD == "pixel":
        return PixelDiscriminator(in_channels, ndf=cfg.ndf, norm=cfg.norm)
    raise ValueError(f"unknown discriminator {cfg.netD!r}; choose patch or pixel")
