"""Discriminators. They return logits (no Sigmoid): the losses apply it stably."""
from __future__ import annotations

import torch
from torch import nn

from .norm import NormLayer, PerImageBatchNorm2d, conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies each overlapping patch as real or fake.

    n_layers=3 gives the 70x70 receptive field of the pix2pix paper.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: NormLayer = PerImageBatchNorm2d) -> None:
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
                norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def output_size(size: int, n_layers: int = 3) -> int:
        """Side of the patch map for a size x size input (0: too small for this depth)."""
        for n in range(n_layers + 2):  # stride-2 convs, then two stride-1 ones (4x4, padding 1)
            size = size // 2 if n < n_layers else size - 1
        return max(size, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel on its own (colour statistics only)."""

    def __init__(self, in_channels: int, ndf: int = 64, norm: NormLayer = PerImageBatchNorm2d) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=conv_bias(norm)),
            norm(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def patch(in_channels: int, cfg) -> PatchDiscriminator:
    return PatchDiscriminator(in_channels, ndf=cfg.ndf, n_layers=cfg.n_layers_d, norm=norm_layer(cfg.norm))


def pixel(in_channels: int, cfg) -> PixelDiscriminator:
    return PixelDiscriminator(in_channels, ndf=cfg.ndf, norm=norm_layer(cfg.norm))


DISCRIMINATORS = {"patch": patch, "pixel": pixel}


def build_discriminator(cfg, in_channels: int) -> nn.Module:
    """Build the discriminator a `ModelConfig` describes for inputs of `in_channels`."""
    try:
        builder = DISCRIMINATORS[cfg.netD]
    except KeyError:
        raise ValueError(f"unknown discriminator {cfg.netD!r}; choose one of {', '.join(DISCRIMINATORS)}") from None
    return builder(in_channels, cfg)
