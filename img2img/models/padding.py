"""Padding whose backward is deterministic when deterministic algorithms are on.

CUDA's reflection and replication padding accumulate gradients with atomics, so their backward
differs from run to run, and `torch.use_deterministic_algorithms(True)` refuses it. Written as
concatenated (flipped) slices, the same padding has a backward made of copies and autograd's
ordered sums. It is only used then: F.pad is faster, and exports to ONNX as one operator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad2d(x: torch.Tensor, padding: int, mode: str = "reflect") -> torch.Tensor:
    """`F.pad(x, (padding,) * 4, mode=mode)` for mode reflect or replicate."""
    if not torch.are_deterministic_algorithms_enabled():
        return F.pad(x, (padding,) * 4, mode=mode)
    for dim in (-1, -2):
        n = x.shape[dim]
        if mode == "reflect":
            before = x.narrow(dim, 1, padding).flip(dim)
            after = x.narrow(dim, n - 1 - padding, padding).flip(dim)
        else:
            repeats = [1] * x.dim()
            repeats[dim] = padding
            before = x.narrow(dim, 0, 1).repeat(repeats)
            after = x.narrow(dim, n - 1, 1).repeat(repeats)
        x = torch.cat([before, x, after], dim)
    return x


class ReflectionPad2d(nn.ReflectionPad2d):
    """nn.ReflectionPad2d (same state, same place in a state_dict), through `pad2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad2d(x, self.padding[0], "reflect")
