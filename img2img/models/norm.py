"""Normalization layers by name, with the canonical code's settings."""
from __future__ import annotations

from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        # As in pix2pix/CycleGAN: no affine parameters and no running statistics.
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose batch, instance or none")


def conv_bias(kind: str) -> bool:
    """A bias before BatchNorm is redundant (its shift cancels it), so only then is it left out."""
    return kind != "batch"
