"""Generators: the pix2pix U-Net and the CycleGAN ResNet.

Both mirror the canonical implementation's layer order and shapes, so its published
weights map onto these modules one to one (only the parameter names differ).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import Registry
from .antialias import BlurDownsample, BlurUpsample
from .norm import NORM_LAYERS, NormLayer, PerImageBatchNorm2d, conv_bias, norm_layer
from .padding import ReflectionPad2d


class UNetBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, then concatenation with the input.

    The outermost level returns the image itself, with no skip connection.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        *,
        in_channels: int | None = None,
        inner: nn.Module | None = None,
        outermost: bool = False,
        norm: NormLayer = PerImageBatchNorm2d,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        in_channels = outer_channels if in_channels is None else in_channels
        bias = conv_bias(norm)
        innermost = inner is None
        down_conv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=bias)
        # The innermost level has no skip input to concatenate, so its up-conv sees fewer channels.
        up_in = inner_channels if innermost else inner_channels * 2

        if outermost:
            self.down = nn.Sequential(down_conv)
            self.up = nn.Sequential(
                nn.ReLU(True), nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1), nn.Tanh()
            )
        elif innermost:
            self.down = nn.Sequential(nn.LeakyReLU(0.2, True), down_conv)
            self.up = nn.Sequential(
                nn.ReLU(True),
                nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1, bias=bias),
                norm(outer_channels),
            )
        else:
            self.down = nn.Sequential(nn.LeakyReLU(0.2, True), down_conv, norm(inner_channels))
            up = [
                nn.ReLU(True),
                nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1, bias=bias),
                norm(outer_channels),
            ]
            if dropout:
                up.append(nn.Dropout(0.5))
            self.up = nn.Sequential(*up)
        self.inner = inner if inner is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.inner(self.down(x)))
        return y if self.outermost else torch.cat([x, y], dim=1)


class UNetGenerator(nn.Module):
    """pix2pix U-Net with `num_downs` stride-2 levels: inputs must be multiples of 2**num_downs.

    Widths double from `ngf` to 8*ngf and then stay at 8*ngf; dropout, when on, is in the up path
    of the 8*ngf levels above the bottleneck, as in the paper (three of them for unet_256).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: NormLayer = PerImageBatchNorm2d,
        dropout: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5, got {num_downs}")
        self.num_downs = num_downs
        block = UNetBlock(ngf * 8, ngf * 8, norm=norm)
        for _ in range(num_downs - 5):
            block = UNetBlock(ngf * 8, ngf * 8, inner=block, norm=norm, dropout=dropout)
        block = UNetBlock(ngf * 4, ngf * 8, inner=block, norm=norm)
        block = UNetBlock(ngf * 2, ngf * 4, inner=block, norm=norm)
        block = UNetBlock(ngf, ngf * 2, inner=block, norm=norm)
        self.model = UNetBlock(out_channels, ngf, in_channels=in_channels, inner=block, outermost=True, norm=norm)

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResNetBlock(nn.Module):
    def __init__(self, channels: int, norm: NormLayer, dropout: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm(channels),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm(channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResNetGenerator(nn.Module):
    """CycleGAN generator: 7x7 stem, two stride-2 downsamples, residual blocks, two upsamples.

    Inputs must be multiples of 4. With `antialias` (CUT's reference generator), each
    downsample is a stride-1 conv followed by a blurred subsampling, and each upsample a blurred
    2x upsampling followed by a stride-1 conv, instead of strided (transposed) convs.
    """

    size_multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: NormLayer = NORM_LAYERS["instance"],
        dropout: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                layers += [nn.Conv2d(c, c * 2, 3, padding=1, bias=bias), norm(c * 2), nn.ReLU(True),
                           BlurDownsample(c * 2)]
            else:
                layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), norm(c * 2), nn.ReLU(True)]
        layers += [ResNetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            if antialias:
                layers += [BlurUpsample(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=bias)]
            else:
                layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            layers += [norm(c // 2), nn.ReLU(True)]
        layers += [ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def encoder_layers(self) -> list[int]:
        """Indices into `model` of CUT's feature layers: the padded input, the two downsampling
        convs, and residual blocks 1 and 5 (the last block if there are fewer)."""
        convs = [i for i, m in enumerate(self.model) if isinstance(m, nn.Conv2d)]
        blocks = [i for i, m in enumerate(self.model) if isinstance(m, ResNetBlock)]
        return [0, convs[1], convs[2], blocks[0], blocks[min(4, len(blocks) - 1)]]

    def forward(self, x: torch.Tensor, feature_layers: Sequence[int] | None = None) -> torch.Tensor | list[torch.Tensor]:
        """The translated image; or, with `feature_layers` (indices into `self.model`), the outputs
        of those layers, running the network only as far as the last of them (CUT's encoder
        features, taken through forward so that DistributedDataParallel sees the call)."""
        if feature_layers is None:
            return self.model(x)
        wanted, features = set(feature_layers), []
        for i, layer in enumerate(self.model[: max(feature_layers) + 1]):
            x = layer(x)
            if i in wanted:
                features.append(x)
        return features


def unet_32(**kwargs) -> UNetGenerator:
    return UNetGenerator(num_downs=5, **kwargs)


def unet_64(**kwargs) -> UNetGenerator:
    return UNetGenerator(num_downs=6, **kwargs)


def unet_256(**kwargs) -> UNetGenerator:
    return UNetGenerator(num_downs=8, **kwargs)


def unet_128(**kwargs) -> UNetGenerator:
    return UNetGenerator(num_downs=7, **kwargs)


def resnet_9blocks(**kwargs) -> ResNetGenerator:
    return ResNetGenerator(n_blocks=9, **kwargs)


def resnet_6blocks(**kwargs) -> ResNetGenerator:
    return ResNetGenerator(n_blocks=6, **kwargs)


GENERATOR_BUILDERS = Registry("generator", {
    "unet_256": unet_256,
    "unet_128": unet_128,
    "unet_64": unet_64,
    "unet_32": unet_32,
    "resnet_9blocks": resnet_9blocks,
    "resnet_6blocks": resnet_6blocks,
})


def unet_for_size(size: int) -> str:
    for depth in (256, 128, 64, 32):
        if size % depth == 0:
            return f"unet_{depth}"
    raise ValueError(f"--size {size}: a U-Net needs a multiple of 32 (e.g. {max(32, size // 32 * 32)}); "
                     "or use --netG resnet_9blocks, which takes multiples of 4")


def generator_size_multiple(netG: str) -> int:
    """Training crops must be multiples of this (inference pads to it)."""
    return int(netG.removeprefix("unet_")) if netG.startswith("unet_") else ResNetGenerator.size_multiple


def build_generator(cfg, in_channels: int | None = None, out_channels: int | None = None,
                    batch_statistics: str = "image") -> nn.Module:
    """Build the generator a `ModelConfig` describes (weights not yet initialised).
    `batch_statistics`: what BatchNorm uses in eval mode (see `norm_layer`)."""
    builder = GENERATOR_BUILDERS[cfg.netG]
    resnet_only = {"antialias": cfg.antialias} if cfg.netG.startswith("resnet") else {}
    if cfg.antialias and not resnet_only:
        raise ValueError(f"--antialias is for ResNet generators, not {cfg.netG}")
    return builder(
        in_channels=cfg.in_channels if in_channels is None else in_channels,
        out_channels=cfg.out_channels if out_channels is None else out_channels,
        ngf=cfg.ngf,
        norm=norm_layer(cfg.norm, batch_statistics),
        dropout=cfg.dropout,
        **resnet_only,
    )
