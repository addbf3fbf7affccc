"""Discriminators. They return logits (no Sigmoid): the losses apply it stably."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as spectral_normalised

from ..registry import Registry
from .antialias import BlurDownsample
from .norm import NormLayer, PerImageBatchNorm2d, conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies each overlapping patch as real or fake.

    n_layers=3 gives the 70x70 receptive field of the pix2pix paper. With `spectral_norm`, every
    convolution's weight is divided by its largest singular value (Miyato et al. 2018). With
    `antialias` (CUT's reference discriminator), each downsampling convolution keeps the
    resolution and is followed by a blurred subsampling (`BlurDownsample`): the same output size,
    computed at twice the resolution. `forward(x, features=True)` also returns the activations
    after each LeakyReLU, for pix2pixHD's feature-matching loss.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: NormLayer = PerImageBatchNorm2d,
                 spectral_norm: bool = False, antialias: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)

        def conv(c_in: int, c_out: int, stride: int, bias: bool = True) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride=1 if antialias else stride, padding=1, bias=bias)
            return spectral_normalised(layer) if spectral_norm else layer

        def downsampled(c_out: int) -> list[nn.Module]:
            return [BlurDownsample(c_out)] if antialias else []

        layers: list[nn.Module] = [conv(in_channels, ndf, 2), nn.LeakyReLU(0.2, True), *downsampled(ndf)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            # The last of these keeps the resolution (stride 1), as in the paper's C512 layer.
            stride = 2 if n < n_layers else 1
            layers += [conv(ndf * prev, ndf * mult, stride, bias), norm(ndf * mult), nn.LeakyReLU(0.2, True),
                       *(downsampled(ndf * mult) if stride == 2 else [])]
        layers.append(conv(ndf * mult, 1, 1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def output_size(size: int, n_layers: int = 3) -> int:
        """Side of the patch map for a size x size input (0: too small for this depth); the same
        with `antialias` (a stride-1 convolution, then a blurred subsampling)."""
        for n in range(n_layers + 2):  # stride-2 convs, then two stride-1 ones (4x4, padding 1)
            size = size // 2 if n < n_layers else size - 1
        return max(size, 0)

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if not features:
            return self.model(x)
        activations = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                activations.append(x)
        return x, activations


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's discriminator: `num_d` PatchGANs, the k-th judging the input downsampled k
    times by a 3x3 average pool of stride 2 (padding not counted), so coarser ones see more of
    the image. Returns one logit map per scale, finest first (with `features`, one
    (logits, activations) pair per scale)."""

    def __init__(self, in_channels: int, num_d: int = 2, **patch_kwargs) -> None:
        super().__init__()
        if num_d < 1:
            raise ValueError(f"num_d must be at least 1, got {num_d}")
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, **patch_kwargs) for _ in range(num_d))

    def forward(self, x: torch.Tensor, features: bool = False) -> list:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x, features=features))
        return outputs


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
    return PatchDiscriminator(in_channels, ndf=cfg.ndf, n_layers=cfg.n_layers_d, norm=norm_layer(cfg.norm),
                              spectral_norm=cfg.spectral_norm, antialias=cfg.antialias_d)


def multiscale(in_channels: int, cfg) -> MultiscaleDiscriminator:
    return MultiscaleDiscriminator(in_channels, num_d=cfg.num_d, ndf=cfg.ndf, n_layers=cfg.n_layers_d,
                                   norm=norm_layer(cfg.norm), spectral_norm=cfg.spectral_norm,
                                   antialias=cfg.antialias_d)


def pixel(in_channels: int, cfg) -> PixelDiscriminator:
    if cfg.spectral_norm:
        raise ValueError("--spectral-norm is for the patch and multiscale discriminators")
    if cfg.antialias_d:
        raise ValueError("--antialias-d is for the patch and multiscale discriminators (the pixel one never "
                         "downsamples)")
    return PixelDiscriminator(in_channels, ndf=cfg.ndf, norm=norm_layer(cfg.norm))


DISCRIMINATORS = Registry("discriminator", {"patch": patch, "multiscale": multiscale, "pixel": pixel})


def build_discriminator(cfg, in_channels: int) -> nn.Module:
    """Build the discriminator a `ModelConfig` describes for inputs of `in_channels`."""
    return DISCRIMINATORS[cfg.netD](in_channels, cfg)
