"""Transposed convolutions as ordinary ones, for integer inference on the CPU.

onnxruntime's CPU provider has no integer kernel for ConvTranspose, so a quantised U-Net left
its whole decoder in float (microsoft/onnxruntime#8988). A stride-s transposed convolution is
exactly s x s ordinary convolutions, one per output phase, whose outputs interleave: each phase
(a, b) of the output (rows a, a + s, ...; columns b, b + s, ...) sums the taps of the kernel
that land on it, a smaller kernel read from the input at a fixed offset. Concatenated and
rearranged by PixelShuffle (ONNX DepthToSpace), they give the transposed convolution's output
to float rounding. This is the compilers' rewrite (onnx-mlir #305, #308); nothing is retrained.

`rewrite_transposed(generator)` returns a copy with every nn.ConvTranspose2d and anti-aliased
upsampling (models.antialias.BlurUpsample) so rewritten; ONNX export uses it for int8."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.antialias import BlurUpsample
from ..models.padding import pad2d


def _axis_phases(kernel: int, stride: int, padding: int, output_padding: int) -> list[tuple[list[int], int, int]]:
    """Along one axis, for each output phase a: (its kernel taps, in the order an ordinary
    convolution reads them; the input padding before; the input padding after, negative to
    crop). The output is `stride` times the input, plus `shift` / stride pixels, where `shift`
    is the layer's (kernel - stride - 2 padding + output padding), a multiple of the stride."""
    shift = kernel - stride - 2 * padding + output_padding
    phases = []
    for a in range(stride):
        r, c = (a + padding) % stride, (a + padding) // stride
        taps = math.ceil((kernel - r) / stride)
        if taps < 1:
            raise ValueError("a phase with no taps: kernel smaller than stride")
        offset = c - (taps - 1)  # the input index the first tap reads, for output index 0
        phases.append(([r + (taps - 1 - t) * stride for t in range(taps)], -offset, shift // stride + offset + taps - 1))
    return phases


def rewritable(kernel: int, stride: int, padding: int, output_padding: int, dilation: int = 1) -> bool:
    """Whether the rewrite applies: no dilation, and an output a whole number of phases."""
    shift = kernel - stride - 2 * padding + output_padding
    return dilation == 1 and stride > 1 and kernel >= stride and shift % stride == 0


class PhaseConvTranspose2d(nn.Module):
    """A ConvTranspose2d (weight [in, out / groups, kh, kw], bias) computed as stride x stride
    ordinary convolutions and a PixelShuffle.

    Where every phase has as many taps as the others (pix2pix's k4 s2 p1: 2 x 2 each) and there
    are no groups, the phases are one convolution with stride² times the output channels and the
    widest padding; each phase then takes its own window of that output. One convolution, and
    no padded copies of the input, run much faster as int8 than a padded copy and a convolution
    per phase (benchmarks/phase_conv.py)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], output_padding: tuple[int, int], groups: int = 1) -> None:
        super().__init__()
        (sh, sw), (kh, kw) = stride, weight.shape[2:]
        if sh != sw:
            raise ValueError("PixelShuffle needs the same stride on both axes")
        self.stride, self.groups, self.channels = sh, groups, weight.shape[1] * groups
        rows = _axis_phases(kh, sh, padding[0], output_padding[0])
        cols = _axis_phases(kw, sw, padding[1], output_padding[1])
        c_in, c_out_per_group = weight.shape[:2]
        # [in, out/g, kh, kw] -> [out, in/g, kh, kw]: per group, the two channel axes swapped.
        forward = (weight.reshape(groups, c_in // groups, c_out_per_group, kh, kw).transpose(1, 2)
                   .reshape(groups * c_out_per_group, c_in // groups, kh, kw))
        kernels, self.pads = [], []
        for row_taps, top, bottom in rows:
            for col_taps, left, right in cols:
                kernels.append(forward[:, :, row_taps][:, :, :, col_taps])
                self.pads.append((left, right, top, bottom))
        self.merged = groups == 1 and len({k.shape for k in kernels}) == 1 and min(min(p) for p in self.pads) >= 0
        if self.merged:
            # One padding wide enough for every phase; phase i's output starts `window[i]` into it.
            self.padding = max(max(p) for p in self.pads)
            self.windows = [(self.padding - top, self.padding - left) for left, _, top, _ in self.pads]
            left, right, top, bottom = self.pads[0]  # every phase's output has one size
            self.trim = (2 * self.padding - top - bottom, 2 * self.padding - left - right)
            self.register_buffer("weight", torch.cat(kernels).contiguous())
            self.register_buffer("bias", None if bias is None else bias.detach().repeat(len(kernels)))
        else:
            for i, kernel in enumerate(kernels):
                self.register_buffer(f"weight{i}", kernel.contiguous())
            self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            out = F.conv2d(x, self.weight, self.bias, padding=self.padding)
            h, w = out.shape[2] - self.trim[0], out.shape[3] - self.trim[1]
            # Each phase's window, phase-major; then channel-major, as PixelShuffle reads them.
            phases = [out[:, i * self.channels:(i + 1) * self.channels, r:r + h, c:c + w]
                      for i, (r, c) in enumerate(self.windows)]
        else:
            phases = []
            for i, (left, right, top, bottom) in enumerate(self.pads):
                # Negative pads crop: F.pad takes both, and exports as one Pad (or Slice) each.
                piece = F.pad(x, (left, right, top, bottom)) if any((left, right, top, bottom)) else x
                phases.append(F.conv2d(piece, getattr(self, f"weight{i}"), self.bias, groups=self.groups))
        n, _, h, w = phases[0].shape
        # The channel count as a constant: an exported graph then knows it (InstanceNorm needs to).
        stacked = torch.stack(phases, dim=2).reshape(n, self.channels * self.stride**2, h, w)
        return F.pixel_shuffle(stacked, self.stride)

    @classmethod
    def of(cls, layer: nn.ConvTranspose2d) -> "PhaseConvTranspose2d":
        return cls(layer.weight.detach(), layer.bias, layer.stride, layer.padding, layer.output_padding, layer.groups)


class PhaseBlurUpsample(nn.Module):
    """BlurUpsample with its fixed transposed convolution rewritten (see PhaseConvTranspose2d)."""

    def __init__(self, blur: BlurUpsample) -> None:
        super().__init__()
        self.up = PhaseConvTranspose2d(blur.kernel, None, (2, 2), (2, 2), (0, 0), groups=blur.kernel.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(pad2d(x, 1, "replicate"))[:, :, 1:-1, 1:-1]


def rewrite_transposed(generator: nn.Module) -> nn.Module:
    """A copy of `generator` with every transposed convolution computed as ordinary ones (those
    the rewrite does not apply to are kept)."""
    net = copy.deepcopy(generator)
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.ConvTranspose2d) and rewritable(module.kernel_size[0], module.stride[0],
                                                                  module.padding[0], module.output_padding[0],
                                                                  module.dilation[0]):
            replacement: nn.Module = PhaseConvTranspose2d.of(module)
        elif isinstance(module, BlurUpsample):
            replacement = PhaseBlurUpsample(module)
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, child, replacement)
    return net
