"""Translator: a trained generator, rebuilt from a checkpoint (or an ONNX export), applied to
images of any size: whole, or in blended tiles when they are large."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import checkpoint_config, load_checkpoint, load_generators
from .config import Direction, RunConfig
from .data.images import load_rgb, to_tensor, to_uint8
from .device import resolve_device
from .errors import Img2ImgError
from .log import logger
from .tiling import AUTO_TILE_PIXELS, DEFAULT_TILE, Tiling, translate_tiled

ImageInput = Image.Image | str | Path
Network = Callable[[torch.Tensor], torch.Tensor]

BATCH_NORM_MODES = ("image", "running")
# "auto": onnxruntime for U-Net generators on the CPU, PyTorch otherwise. On 2 CPU cores
# onnxruntime ran the U-Net 1.4-1.8x as fast as PyTorch eager at 256 and 1024 px, but the ResNet
# generators only 1.05-1.24x at 256 px, short of the 1.3x that would justify the export
# (benchmarks/RESULTS.md).
ENGINES = ("auto", "torch", "onnxruntime")


def onnxruntime_is_faster(cfg: RunConfig, device: torch.device) -> bool:
    return device.type == "cpu" and cfg.model.netG.startswith("unet")


class Translator:
    """Applies a checkpoint's generator(s).

    Dropout is off, so a translation is deterministic. BatchNorm layers (pix2pix's default norm)
    normalise with each image's own statistics (`batch_norm="image"`), which is what the
    canonical pix2pix test does at batch size 1 and measured better on maps than the running
    statistics (`batch_norm="running"`, plain eval mode); see benchmarks/RESULTS.md. The choice
    is made once, in the generators' layers, so one Translator serves concurrent calls.

    Whole images run on `engine`; tiles run in PyTorch, whose norm layers can share one set of
    statistics across the tiles of an image (an ONNX graph fixes its normalisation, so a
    Translator made from a .onnx file alone normalises each tile by its own).
    """

    def __init__(self, cfg: RunConfig, generators: dict[Direction, torch.nn.Module], device: torch.device,
                 onnx: dict[Direction, Network] | None = None) -> None:
        self.cfg = cfg
        self.generators = generators
        self.device = device
        self.onnx = onnx or {}
        for g in generators.values():
            g.eval().to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", batch_norm: str = "image",
                        engine: str = "auto") -> "Translator":
        """`path`: an img2img checkpoint (.pt), or an ONNX file from `img2img export --format onnx`."""
        if Path(path).suffix == ".onnx":
            return cls.from_onnx(path, device)
        if batch_norm not in BATCH_NORM_MODES:
            raise Img2ImgError(f"batch_norm must be one of {', '.join(BATCH_NORM_MODES)}, not {batch_norm!r}")
        if engine not in ENGINES:
            raise Img2ImgError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        dev = resolve_device(device)
        state = load_checkpoint(path)
        cfg = checkpoint_config(state)
        generators = load_generators(state, batch_norm)
        translator = cls(cfg, generators, dev)
        if engine == "onnxruntime" or (engine == "auto" and onnxruntime_is_faster(cfg, dev)):
            translator.onnx = _onnx_sessions(path, cfg, generators, batch_norm, dev, required=engine == "onnxruntime")
        return translator

    @classmethod
    def from_onnx(cls, path: str | Path, device: str = "auto") -> "Translator":
        from .onnx_graph import OnnxGenerator

        graph = OnnxGenerator(path, resolve_device(device))
        return cls(graph.cfg, {}, resolve_device(device), onnx={graph.direction: graph})

    @property
    def directions(self) -> list[str]:
        return list(self.generators or self.onnx)

    @property
    def engine(self) -> str:
        return "onnxruntime" if self.onnx else "torch"

    def network(self, direction: Direction) -> Network:
        """What translates whole images in `direction`: the onnxruntime session or the module."""
        net = self.onnx.get(direction) or self.generators.get(direction)
        if net is None:
            raise Img2ImgError(
                f"this {self.cfg.method} model translates {' and '.join(self.directions)} only, not {direction}"
            )
        return net

    def generator(self, direction: Direction) -> torch.nn.Module:
        """The PyTorch generator (absent from a Translator made from a .onnx file alone)."""
        self.network(direction)
        if direction not in self.generators:
            raise Img2ImgError("this model was loaded from an ONNX file; its PyTorch generator is not available")
        return self.generators[direction]

    def tiling_for(self, width: int, height: int, tile: int | None = None, overlap: int = 64,
                   statistics: str = "pooled") -> Tiling | None:
        """The tiling an image of this size gets: `tile=None` tiles (DEFAULT_TILE px) only above
        AUTO_TILE_PIXELS, `tile=0` never. A Translator made from a .onnx file alone cannot share
        statistics between tiles, so each tile is normalised by its own."""
        if tile is None:
            tile = DEFAULT_TILE if width * height > AUTO_TILE_PIXELS else 0
        if not tile:
            return None
        return Tiling(tile, overlap, statistics if self.generators else "per-tile")

    @torch.no_grad()
    def translate(
        self, images: ImageInput | Sequence[ImageInput], direction: Direction = "AtoB", size: int | None = None,
        batch_size: int = 8, tile: int | None = None, overlap: int = 64, tile_statistics: str = "pooled",
    ) -> Image.Image | list[Image.Image]:
        """Translate one image or a list; returns PIL images of the inputs' sizes.

        With `size`, images are resized to size x size first (the training scale) and the output
        is resized back; otherwise the network runs on the image as it is, padded to a size
        it accepts and cropped back. Images above AUTO_TILE_PIXELS, or that run out of memory
        whole, are translated in `tile`-pixel tiles overlapping by `overlap` (see img2img.tiling);
        `tile=0` never tiles.
        """
        self.network(direction)
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        pil = [im if isinstance(im, Image.Image) else load_rgb(im) for im in items]
        pil = [im.convert("RGB") if im.mode != "RGB" else im for im in pil]
        sizes = [im.size for im in pil]
        if size is not None:
            pil = [im.resize((size, size), Image.BICUBIC) for im in pil]
        out: list[Image.Image | None] = [None] * len(pil)
        whole: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(pil):
            tiling = self.tiling_for(*im.size, tile=tile, overlap=overlap, statistics=tile_statistics)
            if tiling is None:
                whole.setdefault(im.size, []).append(i)
            else:
                if tile is None:
                    logger.info(f"{_name(items[i])}: {im.width}x{im.height} px; translating in {tiling.describe()}")
                out[i] = self.translate_tiled(im, direction, tiling)
        # Same-sized images go through the network together.
        for idx in whole.values():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                try:
                    results = self.translate_tensor(torch.stack([to_tensor(np.asarray(pil[i])) for i in chunk]), direction)
                    results = [Image.fromarray(to_uint8(t)) for t in results]
                except (torch.OutOfMemoryError, MemoryError) as e:
                    if tile == 0:
                        raise Img2ImgError(f"out of memory translating {pil[chunk[0]].size} px images whole ({e}); "
                                           "use tiles") from None
                    tiling = self.tiling_for(*pil[chunk[0]].size, DEFAULT_TILE, overlap, tile_statistics)
                    logger.warning(f"out of memory for whole images; translating in {tiling.describe()}")
                    results = [self.translate_tiled(pil[i], direction, tiling) for i in chunk]
                for i, result in zip(chunk, results):
                    out[i] = result
        if size is not None:
            out = [result.resize(original, Image.BICUBIC) for result, original in zip(out, sizes)]
        return out[0] if single else out

    @torch.no_grad()
    def translate_tiled(self, image: Image.Image, direction: Direction, tiling: Tiling) -> Image.Image:
        """One image in blended tiles (see img2img.tiling); memory is bounded by the tile size."""
        net = self.generators.get(direction) or self.network(direction)
        return translate_tiled(lambda x: self._run(net, x), image, tiling, net.size_multiple)

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, direction: Direction = "AtoB") -> torch.Tensor:
        """[N, C, H, W] in [-1, 1] -> same shape, any H and W."""
        return self._run(self.network(direction), x)

    def _run(self, net: Network, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x.to(self.device), net.size_multiple)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            y = net(padded)
        return y[..., :h, :w].float().cpu()


def _name(item: ImageInput) -> str:
    return "image" if isinstance(item, Image.Image) else Path(item).name


def _onnx_sessions(path, cfg, generators, batch_norm, device, required: bool) -> dict[Direction, Network]:
    """onnxruntime sessions for the checkpoint's generators, exported once into the user's
    cache. Unless onnxruntime was asked for, a failure falls back to PyTorch with a warning."""
    try:
        from .onnx_graph import OnnxGenerator, cached_export

        return {d: OnnxGenerator(cached_export(path, g, cfg, d, batch_norm), device) for d, g in generators.items()}
    except Exception as e:
        if required:
            raise Img2ImgError(f"{path}: cannot run with onnxruntime ({e})") from None
        logger.warning(f"{Path(path).name}: translating with PyTorch; the ONNX export failed ({e})")
        return {}


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right to a multiple: by reflection, or by edge replication where the image is
    too small to reflect."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
