"""Translator: a trained generator, rebuilt from a checkpoint, applied to images of any size."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import checkpoint_config, load_checkpoint, load_generators
from .config import Direction, RunConfig
from .data.images import load_rgb, to_tensor, to_uint8
from .device import resolve_device
from .errors import Img2ImgError

ImageInput = Image.Image | str | Path


BATCH_NORM_MODES = ("image", "running")


class Translator:
    """Applies a checkpoint's generator(s).

    Dropout is off, so a translation is deterministic. BatchNorm layers (pix2pix's default norm)
    normalise with each image's own statistics (`batch_norm="image"`), which is what the
    canonical pix2pix test does at batch size 1 and measured better on maps than the running
    statistics (`batch_norm="running"`, plain eval mode); see benchmarks/RESULTS.md. The choice
    is made once, in the generators' layers, so one Translator serves concurrent calls.
    """

    def __init__(self, cfg: RunConfig, generators: dict[Direction, torch.nn.Module], device: torch.device) -> None:
        self.cfg = cfg
        self.generators = generators
        self.device = device
        for g in generators.values():
            g.eval().to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", batch_norm: str = "image") -> "Translator":
        if batch_norm not in BATCH_NORM_MODES:
            raise Img2ImgError(f"batch_norm must be one of {', '.join(BATCH_NORM_MODES)}, not {batch_norm!r}")
        dev = resolve_device(device)
        state = load_checkpoint(path)
        return cls(checkpoint_config(state), load_generators(state, batch_norm), dev)

    @property
    def directions(self) -> list[str]:
        return list(self.generators)

    def generator(self, direction: Direction) -> torch.nn.Module:
        try:
            return self.generators[direction]
        except KeyError:
            raise Img2ImgError(
                f"this {self.cfg.method} model translates {' and '.join(self.generators)} only, not {direction}"
            ) from None

    @torch.no_grad()
    def translate(
        self, images: ImageInput | Sequence[ImageInput], direction: Direction = "AtoB", size: int | None = None,
        batch_size: int = 8,
    ) -> Image.Image | list[Image.Image]:
        """Translate one image or a list; returns PIL images of the inputs' sizes.

        With `size`, images are resized to size x size first (the training scale) and the output
        is resized back; otherwise the network runs on the image as it is, padded to a size
        it accepts and cropped back.
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        pil = [im if isinstance(im, Image.Image) else load_rgb(im) for im in items]
        pil = [im.convert("RGB") if im.mode != "RGB" else im for im in pil]
        out: list[Image.Image | None] = [None] * len(pil)
        # Same-sized images go through the network together.
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(pil):
            by_size.setdefault(im.size, []).append(i)
        for (w, h), idx in by_size.items():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                arrays = [np.asarray(pil[i] if size is None else pil[i].resize((size, size), Image.BICUBIC)) for i in chunk]
                results = self.translate_tensor(torch.stack([to_tensor(a) for a in arrays]), direction)
                for i, t in zip(chunk, results):
                    result = Image.fromarray(to_uint8(t))
                    out[i] = result if size is None else result.resize((w, h), Image.BICUBIC)
        return out[0] if single else out

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, direction: Direction = "AtoB") -> torch.Tensor:
        """[N, C, H, W] in [-1, 1] -> same shape, any H and W."""
        net = self.generator(direction)
        x = x.to(self.device)
        h, w = x.shape[-2:]
        m = net.size_multiple
        padded = pad_to_multiple(x, m)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            y = net(padded)
        return y[..., :h, :w].float().cpu()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right to a multiple: by reflection, or by edge replication where the image is
    too small to reflect."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)

