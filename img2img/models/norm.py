"""Normalisation layers. Networks take a `NormLayer` (channels -> module), as torchvision's and
the canonical code's do; `norm_layer` turns a config's name into one, once, when a network is built."""
from __future__ import annotations

import functools
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

NormLayer = Callable[[int], nn.Module]
BatchNormStatistics = Literal["image", "running"]


class PerImageBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that, in eval mode, normalises each image by its own statistics instead of the
    running ones; training is plain BatchNorm, and parameters and buffers are BatchNorm2d's, so
    checkpoints load either way.

    This is what the canonical pix2pix test gets from train-mode BatchNorm at batch size 1, but
    per image at any batch size, without touching the running statistics, and with no state
    changed per call, so one network serves concurrent requests.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


# As in pix2pix/CycleGAN: instance norm without affine parameters or running statistics.
NORM_LAYERS: dict[str, NormLayer] = {
    "batch": PerImageBatchNorm2d,
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "none": _no_norm,
}


def norm_layer(name: str, batch_statistics: BatchNormStatistics = "image") -> NormLayer:
    """The layer for a config's norm name. `batch_statistics` is what BatchNorm uses in eval
    mode: each image's own ("image", what samples, FID and translation use by default) or the
    running averages ("running", plain nn.BatchNorm2d)."""
    try:
        layer = NORM_LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORM_LAYERS)}") from None
    if name == "batch" and batch_statistics == "running":
        return nn.BatchNorm2d
    return layer


def conv_bias(norm: NormLayer) -> bool:
    """A conv bias before BatchNorm is redundant (its learned shift cancels it), so only then
    is it left out. Probed on a one-channel layer, so any NormLayer form works."""
    return not isinstance(norm(1), _BatchNorm)
