"""Normalisation layers. Networks take a `NormLayer` (channels -> module), as torchvision's and
the canonical code's do; `norm_layer` turns a config's name into one, once, when a network is built."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import Registry

NormLayer = Callable[[int], nn.Module]
BatchNormStatistics = Literal["image", "running"]


class SharedStatistics:
    """Normalisation statistics shared by several forward passes, so that the tiles of one
    image are normalised alike (see `shared_statistics`).

    While `recording`, each per-image norm layer normalises every image by its own statistics,
    as usual, and adds them to a pooled per-channel mean and variance; `pixel_weights`
    ([N, 1, H, W] at the input's resolution, e.g. each tile's share of the pixels it covers)
    weight the pool, so that overlapping tiles count each image pixel once. Once frozen, every
    layer normalises by the pooled figures instead.
    """

    def __init__(self) -> None:
        self.recording = True
        self.pixel_weights: torch.Tensor | None = None
        self._sums: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def freeze(self) -> None:
        self.recording = False
        self._pooled = {}
        for layer, (weighted_sum, weighted_squares, total) in self._sums.items():
            mean = weighted_sum / total
            var = (weighted_squares / total - mean.square()).clamp_min(0)
            self._pooled[layer] = (mean.view(1, -1, 1, 1), var.view(1, -1, 1, 1))

    def normalise(self, layer: nn.Module, x: torch.Tensor, eps: float) -> torch.Tensor:
        x32 = x.float()
        if self.recording:
            self._record(layer, x32)
            mean = x32.mean((2, 3), keepdim=True)
            var = x32.var((2, 3), unbiased=False, keepdim=True)
        else:
            try:
                mean, var = self._pooled[id(layer)]
            except KeyError:
                raise RuntimeError("a norm layer ran that did not run while recording") from None
        return ((x32 - mean) * torch.rsqrt(var + eps)).to(x.dtype)

    def _record(self, layer: nn.Module, x: torch.Tensor) -> None:
        if self.pixel_weights is None:
            w = torch.ones_like(x[:, :1])
        else:
            w = F.interpolate(self.pixel_weights.to(x.device, torch.float32), size=x.shape[-2:], mode="area")
        sums = ((w * x).sum((0, 2, 3)), (w * x.square()).sum((0, 2, 3)), w.sum())
        previous = self._sums.get(id(layer))
        self._sums[id(layer)] = sums if previous is None else tuple(a + b for a, b in zip(previous, sums))


class FrameStatistics:
    """Normalisation statistics of consecutive video frames, pooled over a trailing window, so
    that a frame's tone follows its neighbours' instead of jumping with its own content.

    Frames go through the network twice per batch (see `Translator.translate_frames`). While
    `recording`, each per-image norm layer normalises each frame by its own statistics and keeps
    them per frame, in order; then `pool()` turns recording off, and every layer normalises each
    frame of the batch by the statistics of the `window` frames up to it, each frame weighted
    equally. Records older than the window are dropped as frames go by.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.recording = True
        self.first = 0  # the index of the batch's first frame
        self.frames = 0  # frames recorded so far
        # Per layer: the frame index of the first kept record, and the (sum, sum of squares,
        # pixel count) of each frame from there, per channel.
        self._records: dict[int, tuple[int, list[tuple[torch.Tensor, torch.Tensor, int]]]] = {}

    def record(self, frames: int) -> None:
        """The next pass records the next `frames` frames."""
        self.recording, self.first = True, self.frames
        self.frames += frames

    def pool(self) -> None:
        """The next pass normalises the recorded batch's frames by their windows."""
        self.recording = False

    def normalise(self, layer: nn.Module, x: torch.Tensor, eps: float) -> torch.Tensor:
        x32 = x.float()
        if self.recording:
            start, records = self._records.setdefault(id(layer), (0, []))
            count = x32.shape[2] * x32.shape[3]
            records.extend(zip(x32.sum((2, 3)), x32.square().sum((2, 3)), [count] * len(x32)))
            mean = x32.mean((2, 3), keepdim=True)
            var = x32.var((2, 3), unbiased=False, keepdim=True)
        else:
            start, records = self._records[id(layer)]
            means, variances = [], []
            for frame in range(self.first, self.first + len(x32)):
                window = records[max(frame - self.window + 1, start) - start : frame - start + 1]
                total = sum(n for _, _, n in window)
                mean = sum(s for s, _, _ in window) / total
                means.append(mean)
                variances.append((sum(q for _, q, _ in window) / total - mean.square()).clamp_min(0))
            mean, var = torch.stack(means)[..., None, None], torch.stack(variances)[..., None, None]
            # Frames before the next batch's first window are no longer needed.
            keep_from = max(self.first + len(x32) - self.window + 1, start)
            self._records[id(layer)] = (keep_from, records[keep_from - start :])
        return ((x32 - mean) * torch.rsqrt(var + eps)).to(x.dtype)


_shared: ContextVar[SharedStatistics | FrameStatistics | None] = ContextVar("img2img_shared_norm_statistics", default=None)


@contextmanager
def shared_statistics(statistics: SharedStatistics | FrameStatistics) -> Iterator[SharedStatistics | FrameStatistics]:
    """Per-image norm layers in eval mode use `statistics` (recording or frozen) inside the
    block. The setting is per thread (a context variable), so concurrent callers of one network
    do not see each other's statistics."""
    token = _shared.set(statistics)
    try:
        yield statistics
    finally:
        _shared.reset(token)


def _per_image_norm(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                    eps: float) -> torch.Tensor:
    statistics = _shared.get()
    if statistics is None:
        return F.instance_norm(x, weight=weight, bias=bias, use_input_stats=True, eps=eps)
    y = statistics.normalise(layer, x, eps)
    if weight is not None:
        y = y * weight[:, None, None] + bias[:, None, None]
    return y


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
        return _per_image_norm(self, x, self.weight, self.bias, self.eps)


class PerImageInstanceNorm2d(nn.InstanceNorm2d):
    """The canonical code's InstanceNorm (no affine parameters, no running statistics), which
    can also take its statistics from `shared_statistics`."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_image_norm(self, x, None, None, self.eps)


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


# As in pix2pix/CycleGAN: instance norm without affine parameters or running statistics.
NORM_LAYERS: Registry[NormLayer] = Registry("norm", {
    "batch": PerImageBatchNorm2d,
    "instance": PerImageInstanceNorm2d,
    "none": _no_norm,
})


def norm_layer(name: str, batch_statistics: BatchNormStatistics = "image") -> NormLayer:
    """The layer for a config's norm name. `batch_statistics` is what BatchNorm uses in eval
    mode: each image's own ("image", what samples, FID and translation use by default) or the
    running averages ("running", plain nn.BatchNorm2d)."""
    layer = NORM_LAYERS[name]
    if name == "batch" and batch_statistics == "running":
        return nn.BatchNorm2d
    return layer


def conv_bias(norm: NormLayer) -> bool:
    """A conv bias before BatchNorm is redundant (its learned shift cancels it), so only then
    is it left out. Probed on a one-channel layer, so any NormLayer form works."""
    return not isinstance(norm(1), _BatchNorm)
