"""Anti-aliased (blurred) resampling, after Zhang, "Making Convolutional Networks Shift-Invariant
Again" (ICML 2019), as CUT's reference generator uses it: a fixed binomial low-pass filter
before subsampling, and after zero-insertion when upsampling. The filters are constants, so
they are not saved in checkpoints."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .padding import pad2d


def binomial_filter(size: int) -> torch.Tensor:
    """The size x size outer product of a row of Pascal's triangle, summing to 1."""
    row = torch.tensor([float(math.comb(size - 1, k)) for k in range(size)])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Reflection-pad by 1, blur with a 3x3 binomial filter, keep every second pixel: H -> ceil(H/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("kernel", binomial_filter(3).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(pad2d(x, 1, "reflect"), self.kernel.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Insert zeros between pixels and blur with a 4x4 binomial filter (scaled by 4 to keep the
    mean), edges replicated: H -> 2H."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("kernel", (binomial_filter(4) * 4).expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad2d(x, 1, "replicate")
        up = F.conv_transpose2d(padded, self.kernel.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
        return up[:, :, 1:-1, 1:-1]
