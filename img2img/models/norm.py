"""Normalization layers by name, with the canonical code's settings."""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


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


def _per_image_batch_norm(bn: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, weight=bn.weight, bias=bn.bias, use_input_stats=True, eps=bn.eps)


@contextlib.contextmanager
def per_image_batch_norm(net: nn.Module):
    """Within the block, BatchNorm layers normalise each image by its own statistics.

    This is what the canonical pix2pix test script gets from train-mode BatchNorm at batch size
    1, but per image for any batch size, and without touching the running statistics.
    """
    patched = [m for m in net.modules() if isinstance(m, _BatchNorm)]  # SyncBatchNorm too
    for m in patched:
        m.forward = functools.partial(_per_image_batch_norm, m)
    try:
        yield net
    finally:
        for m in patched:
            del m.forward
