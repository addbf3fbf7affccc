"""Translator: a trained generator, rebuilt from a checkpoint (or an ONNX export), applied to
images of any size: whole, or in blended tiles when they are large. `translate_inputs` is the one
path every call takes: each input read and adapted once, a typed `Translation` back.

Dropout is off, so a translation is deterministic. BatchNorm layers (pix2pix's default norm)
normalise with each image's own statistics (`batch_norm="image"`), which is what the canonical
pix2pix test does at batch size 1 and measured better on maps than the running statistics
(`batch_norm="running"`, plain eval mode); see benchmarks/RESULTS.md. The choice is made once,
in the generators' layers.

Whole images run on the chosen runtime (PyTorch or onnxruntime, `choose_runtime`); tiles run in
PyTorch, whose norm layers can share one set of statistics across the tiles of an image (an ONNX
graph fixes its normalisation, so a Translator made from a .onnx file alone normalises each tile
by its own)."""
from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..cancellation import check_stop
from ..config import Direction, RunConfig
from ..device import resolve_device
from ..errors import Img2ImgError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.pixel_format import PixelFormat, check_finite, preview_uint8, resize_pixels
from ..io.readers import pil_pixels, read_image
from ..log import logger
from ..methods import METHODS
from ..models.norm import FrameStatistics
from ..persist.checkpoint import checkpoint_config, load_checkpoint, load_generators, safetensors_files
from ..persist.hub import SCHEME, fetch_model, is_hub_reference
from .precision import PRECISIONS, Int8Cache, calibration_inputs, calibration_source, select
from .tiling import AUTO_TILING, DEFAULT_TILE, Formats, Tiling, translate_tiled
from .video import DEFAULT_TEMPORAL_STATISTICS, VideoReport, translate_frames, translate_video

ImageInput = Image.Image | str | Path
Network = Callable[[torch.Tensor], torch.Tensor]

BATCH_NORM_MODES = ("image", "running")
# "auto": onnxruntime for U-Net generators on the CPU, PyTorch otherwise. On 2 CPU cores
# onnxruntime ran the U-Net 1.4-1.8x as fast as PyTorch eager at 256 and 1024 px, but the ResNet
# generators only 1.05-1.24x at 256 px, short of the 1.3x that would justify the export
# (benchmarks/RESULTS.md).
ENGINES = ("auto", "torch", "onnxruntime")


class NamedPixels(NamedTuple):
    """Pixels already read (H x W x C), with the name its messages give them."""

    name: str
    pixels: np.ndarray


@dataclass
class Translation:
    """One input translated: its `source` pixels as read and adapted to the model (the user's
    format), the `result` in the output format at the input's size, and the tiles it ran in
    (None: whole)."""

    name: str
    source: np.ndarray
    result: np.ndarray
    tiling: Tiling | None


def onnxruntime_is_faster(cfg: RunConfig, device: torch.device) -> bool:
    return device.type == "cpu" and cfg.model.netG.startswith("unet")


class Translator:
    """Applies a checkpoint's generator(s), deterministically, to inputs of any size (see the
    module's notes on BatchNorm and engines); one Translator serves concurrent calls."""

    def __init__(self, cfg: RunConfig, generators: dict[Direction, torch.nn.Module], device: torch.device,
                 runtime: dict[Direction, Runtime] | None = None) -> None:
        """`runtime`: per direction, what runs whole images (`choose_runtime`); default the
        generator at fp32."""
        self.cfg = cfg
        self.generators = generators
        self.device = device
        runtime = runtime or {d: Runtime("fp32") for d in generators}
        self.onnx: dict[Direction, Network] = {d: r.network for d, r in runtime.items() if r.network is not None}
        # Per direction: "fp32", "bf16" or "int8", and why (see translate.precision).
        self.precision: dict[Direction, str] = {d: r.precision for d, r in runtime.items()}
        self.precision_reason: dict[Direction, str] = {d: r.reason for d, r in runtime.items() if r.reason}
        self._noted: set[str] = set()  # what was noted already (one line each)
        for g in generators.values():
            g.eval().to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", batch_norm: str = "image",
                        engine: str = "auto", precision: str = "auto",
                        calibration: str | Path | None = None) -> "Translator":
        """The Translator of a checkpoint, a safetensors model, a Hub model or an ONNX file,
        assembled once (see `load`)."""
        if is_hub_reference(path):
            path = fetch_model(str(path))
        if Path(path).suffix == ".onnx":
            return cls.from_onnx(path, device)
        return cls(*load(path, device, batch_norm, engine, precision, calibration))

    @classmethod
    def from_pretrained(cls, repo: str, **options) -> Translator:
        """A model on the Hugging Face Hub, "user/name" or "user/name@revision" (see img2img.persist.hub);
        `options` as `from_checkpoint`."""
        return cls.from_checkpoint(repo if is_hub_reference(repo) else SCHEME + repo, **options)

    @classmethod
    def from_onnx(cls, path: str | Path, device: str = "auto") -> "Translator":
        from .onnx_graph import OnnxGenerator

        graph = OnnxGenerator(path, resolve_device(device))
        return cls(graph.cfg, {}, resolve_device(device), {graph.direction: Runtime(graph.precision, graph)})

    def with_steps(self, steps: int | None = None, seed: int = 0) -> Translator:
        """The same networks translating a UNSB model in `steps` steps of its bridge (1 to the
        trained number; None: all of them) from noise `seed`."""
        other = copy.copy(self)
        other.generators = sampling(self.generators, self.cfg.method, steps, seed)
        other.onnx = sampling(self.onnx, self.cfg.method, steps, seed)
        return other

    @property
    def directions(self) -> list[str]:
        return list(self.generators or self.onnx)

    @property
    def engine(self) -> str:
        return "onnxruntime" if self.onnx else "torch"

    def describe_precision(self, direction: Direction) -> str:
        """e.g. "int8 (onnxruntime)", for the app and the CLI to say what served a request."""
        engine = "onnxruntime" if direction in self.onnx else "PyTorch"
        count = getattr(self.onnx.get(direction) or self.generators.get(direction), "steps", None)
        steps = f", {count} step{'s' * (count > 1)}" if count else ""
        return f"{self.precision.get(direction, 'fp32')} ({engine}){steps}"

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

    def tiling_for(self, width: int, height: int, tiling: Tiling = AUTO_TILING) -> Tiling | None:
        """The tiles an image of this size gets under `tiling` (None: whole). A Translator made
        from a .onnx file alone cannot share statistics between tiles, so each tile is normalised
        by its own."""
        chosen = tiling.for_image(width, height)
        if chosen is None or self.generators:
            return chosen
        return dataclasses.replace(chosen, statistics="per-tile")

    @property
    def method(self):
        return METHODS[self.cfg.method]

    def formats(self, direction: Direction) -> Formats:
        """The pixel formats users give and get in `direction`: the generator's (the model's input
        and output, or reversed), unless the method converts them (colourisation: 8-bit RGB)."""
        user = self.method.codec.user_formats(direction)
        return Formats(*user) if user else self.network_formats(direction)

    def network_formats(self, direction: Direction) -> Formats:
        """The pixel formats the generator itself maps between."""
        source, target = PixelFormat.of_model(self.cfg.model, "in"), PixelFormat.of_model(self.cfg.model, "out")
        return Formats(source, target) if direction == "AtoB" else Formats(target, source)

    def noted(self, kind: str) -> bool:
        """Whether `kind` was noted already; from now on it is."""
        seen = kind in self._noted
        self._noted.add(kind)
        return seen

    def pixels_of(self, item: ImageInput | np.ndarray, direction: Direction, name: str | None = None) -> np.ndarray:
        """An input as pixels of the direction's source format (H x W x C), read and converted
        as needed; a conversion is noted in one line, once per kind of conversion."""
        name = name or _name(item)
        if isinstance(item, np.ndarray):
            pixels = item[..., None] if item.ndim == 2 else item
        elif isinstance(item, Image.Image):
            pixels = pil_pixels(item).array
        else:
            pixels = read_image(item).array
        check_finite(pixels, name)
        pixels, note = self.formats(direction).source.adapt(pixels, name)
        if note is not None and not self.noted(note.split(": ", 1)[1]):
            logger.info(f"note: {note} (and so for any other such input)")
        return pixels

    @torch.no_grad()
    def translate(self, images: ImageInput | Sequence[ImageInput], direction: Direction = "AtoB",
                  size: int | None = None, batch_size: int = 8,
                  tiling: Tiling = AUTO_TILING) -> Image.Image | list[Image.Image]:
        """Translate one image or a list; returns PIL images of the inputs' sizes: the output
        itself for 8-bit models, else its 8-bit preview (`translate_pixels` keeps every bit).
        Arguments as `translate_pixels`."""
        single = not isinstance(images, (list, tuple))
        out = self.translate_pixels([images] if single else list(images), direction, size, batch_size, tiling)
        target = self.formats(direction).target
        pil = [to_pil(result, target) for result in out]
        return pil[0] if single else pil

    @torch.no_grad()
    def translate_pixels(
        self, images: ImageInput | np.ndarray | Sequence[ImageInput | np.ndarray], direction: Direction = "AtoB",
        size: int | None = None, batch_size: int = 8, tiling: Tiling = AUTO_TILING,
    ) -> np.ndarray | list[np.ndarray]:
        """Translate one image or a list (PIL images, files of any format the readers know, or
        H x W x C arrays); returns H x W x C arrays of the output format, at the inputs' sizes.
        Arguments as `translate_inputs`."""
        single = not isinstance(images, (list, tuple))
        out = [t.result for t in self.translate_inputs([images] if single else list(images), direction, size,
                                                       batch_size, tiling)]
        return out[0] if single else out

    @torch.no_grad()
    def translate_file(self, path: str | Path, direction: Direction = "AtoB", limits: Limits = DEFAULT_LIMITS,
                       size: int | None = None, tiling: Tiling = AUTO_TILING, batch_size: int = 8) -> Translation:
        """One image file, read once (its header checked against `limits` first) and translated."""
        self.network(direction)  # a direction the model lacks is refused before the file is read
        read = NamedPixels(Path(path).name, read_image(path, limits=limits).array)
        return self.translate_inputs([read], direction, size, batch_size, tiling)[0]

    @torch.no_grad()
    def translate_inputs(self, items: Sequence[ImageInput | np.ndarray | NamedPixels], direction: Direction = "AtoB",
                         size: int | None = None, batch_size: int = 8,
                         tiling: Tiling = AUTO_TILING) -> list[Translation]:
        """The one translation path: each input read and adapted once (`pixels_of`), then
        translated whole or in tiles, as `tiling` decides for its size; a `Translation` each.

        Inputs of another channel count or dtype than the model's are converted (see
        `PixelFormat.adapt`). With `size`, images are resized to size x size first (the training
        scale) and the output is resized back; otherwise the network runs on the image as it is,
        padded to a size it accepts and cropped back. Images that `tiling` tiles (by default those
        above AUTO_TILE_PIXELS), or that run out of memory whole, are translated in overlapping
        tiles (see img2img.translate.tiling). Same-sized whole images go through the network
        `batch_size` at a time."""
        self.network(direction)
        names = [item.name if isinstance(item, NamedPixels) else _name(item) for item in items]
        given = []
        for item, name in zip(items, names):  # a volume's slices are thousands: stoppable between them
            check_stop()
            given.append(self.pixels_of(item.pixels if isinstance(item, NamedPixels) else item, direction, name))
        pixels = [self.method.codec.to_network(p) for p in given]
        sizes = [p.shape[:2] for p in pixels]
        if size is not None:
            pixels = [resize_pixels(p, size, size) for p in pixels]
        out: list[np.ndarray | None] = [None] * len(pixels)
        used: list[Tiling | None] = [None] * len(pixels)
        whole: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(pixels):
            height, width = p.shape[:2]
            used[i] = self.tiling_for(width, height, tiling)
            if used[i] is None:
                whole.setdefault((width, height), []).append(i)
            else:
                if tiling.automatic:
                    logger.info(f"{names[i]}: {width}x{height} px; translating in {used[i].describe()}")
                out[i] = self.translate_tiled(p, direction, used[i])
        translate_whole(self, pixels, whole, direction, batch_size, tiling, out, used)
        if size is not None:
            out = [resize_pixels(result, w, h) for result, (h, w) in zip(out, sizes)]
        return [Translation(name, source, self.method.codec.from_network(source, result), tiles)
                for name, source, result, tiles in zip(names, given, out, used)]

    def translate_frames(self, frames: Sequence[np.ndarray], direction: Direction = "AtoB", batch_size: int = 8,
                         statistics: FrameStatistics | None = None, tiling: Tiling = AUTO_TILING) -> list[np.ndarray]:
        """Consecutive video frames of one size (see video.translate_frames)."""
        return translate_frames(self, frames, direction, batch_size, statistics, tiling)

    def translate_video(self, src: str | Path, dst: str | Path, direction: Direction = "AtoB", batch_size: int = 8,
                        temporal_statistics: int = DEFAULT_TEMPORAL_STATISTICS, tiling: Tiling = AUTO_TILING,
                        **options) -> VideoReport:
        """A video file translated into `dst` (see video.translate_video)."""
        return translate_video(self, src, dst, direction, batch_size, temporal_statistics, tiling, **options)

    @torch.no_grad()
    def translate_tiled(self, pixels: np.ndarray | Image.Image, direction: Direction, tiling: Tiling) -> np.ndarray:
        """One image in blended tiles (see img2img.translate.tiling); memory is bounded by the tile size."""
        if isinstance(pixels, Image.Image):
            pixels = self.method.codec.to_network(self.pixels_of(pixels, direction))
        # Statistics shared across tiles need PyTorch's norm layers; per-tile ones run as whole images do.
        shared = tiling.statistics != "per-tile"
        net = self.generators.get(direction) if shared and direction in self.generators else self.network(direction)
        return translate_tiled(lambda x: self.run(net, x), pixels, tiling, net.size_multiple,
                               formats=self.network_formats(direction))

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor, direction: Direction = "AtoB") -> torch.Tensor:
        """[N, C, H, W] in [-1, 1] -> [N, C', H, W], any H and W."""
        return self.run(self.network(direction), x)

    def run(self, net: Network, x: torch.Tensor) -> torch.Tensor:
        """`net` on [N, C, H, W] of any H and W: padded to its size multiple, cropped back."""
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x.to(self.device), net.size_multiple)
        bf16 = isinstance(net, torch.nn.Module) and "bf16" in self.precision.values()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            y = net(padded)
        return y[..., :h, :w].float().cpu()


def translate_whole(translator: Translator, pixels: list[np.ndarray], whole: dict[tuple[int, int], list[int]],
                    direction: Direction, batch_size: int, tiling: Tiling, out: list, used: list) -> None:
    """Translator.translate_inputs's whole images (`whole`: their indices by size), `batch_size`
    of one size at a time, into `out`; where memory runs out, in tiles, noted in `used`."""
    formats = translator.network_formats(direction)
    for (width, height), idx in whole.items():
        for start in range(0, len(idx), batch_size):
            check_stop()
            chunk = idx[start : start + batch_size]
            try:
                batch = torch.stack([formats.source.encode(pixels[i]) for i in chunk])
                results = translator.translate_tensor(batch, direction)
                results = [formats.target.decode_tensor(t) for t in results]
            except (torch.OutOfMemoryError, MemoryError) as e:
                if tiling.tile == 0:
                    raise Img2ImgError(f"out of memory translating {width}x{height} px images whole ({e}); "
                                       "use tiles") from None
                fallback = translator.tiling_for(width, height, dataclasses.replace(tiling, tile=DEFAULT_TILE))
                logger.warning(f"out of memory for whole images; translating in {fallback.describe()}")
                results = [translator.translate_tiled(pixels[i], direction, fallback) for i in chunk]
                for i in chunk:
                    used[i] = fallback
            for i, result in zip(chunk, results):
                out[i] = result


def sampling(generators: dict[Direction, torch.nn.Module], method: str, steps: int | None,
             seed: int) -> dict[Direction, torch.nn.Module]:
    """UNSB generators (their weights shared) that translate in `steps` steps from noise `seed`."""
    if not all(hasattr(g, "sampling") for g in generators.values()):
        raise Img2ImgError(f"steps and a seed are for UNSB models, not this {method} model")
    try:
        return {direction: g.sampling(steps, seed) for direction, g in generators.items()}
    except ValueError as e:
        raise Img2ImgError(str(e)) from None


def _name(item) -> str:
    return "image" if isinstance(item, (Image.Image, np.ndarray)) else Path(item).name


def to_pil(pixels: np.ndarray, fmt: PixelFormat) -> Image.Image:
    """8-bit pixels as they are (grey or RGB); anything else as its preview, windowed by `fmt`'s range."""
    if pixels.dtype == np.uint8 and pixels.shape[2] in (1, 3):
        return Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    return Image.fromarray(preview_uint8(fmt.encode(pixels).permute(1, 2, 0).numpy()))


def load(path: str | Path, device: str = "auto", batch_norm: str = "image", engine: str = "auto",
         precision: str = "auto", calibration: str | Path | None = None):
    """(config, generators, device, runtime) of a Translator. `path`: an img2img checkpoint
    (.pt), or a safetensors model (`img2img export --format safetensors`: its folder or its
    model.safetensors, or `hf://user/name[@revision]` on the Hugging Face Hub).

    `precision` (see translate.precision): on the CPU, "auto" measures int8 (and bf16 where the
    CPU has bf16 instructions) against fp32 on the model's own images, once per checkpoint, and
    keeps the fastest that passes the quality gate; "int8" calibrates on `calibration` (a
    folder of input-domain images) or the checkpoint's validation images. On CUDA, "auto" is
    bf16 autocast."""
    for value, allowed, what in ((batch_norm, BATCH_NORM_MODES, "batch_norm"), (engine, ENGINES, "engine"),
                                 (precision, PRECISIONS, "precision")):
        if value not in allowed:
            raise Img2ImgError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    dev = resolve_device(device)
    if Path(path).is_dir():  # a safetensors model's folder: its weights file names the caches
        path = safetensors_files(path)[0]
    state = load_checkpoint(path)
    cfg = checkpoint_config(state)
    generators = load_generators(state, batch_norm, source=str(path))
    return cfg, generators, dev, choose_runtime(Path(path), cfg, generators, dev, batch_norm, engine, precision,
                                                calibration)


class Runtime(NamedTuple):
    """What runs one direction's whole images: its precision, the onnxruntime network (None: the
    PyTorch generator) and why, in one line."""

    precision: str
    network: Network | None = None
    reason: str = ""


def choose_runtime(checkpoint: Path, cfg: RunConfig, generators: dict[Direction, torch.nn.Module],
                   device: torch.device, batch_norm: str, engine: str, precision: str,
                   calibration: str | Path | None) -> dict[Direction, Runtime]:
    """Each direction's runtime, chosen once: on CUDA, PyTorch at fp32 or bf16 autocast; on the
    CPU, onnxruntime where `engine` asks for it (auto: for U-Nets), and the precision
    `precision.select` measures or is asked for, calibrated on `calibration` or the model's
    validation images (read as files)."""
    if device.type == "cuda" and precision == "int8":
        raise Img2ImgError("int8 translation is for the CPU (onnxruntime); on CUDA use auto, bf16 or fp32")
    onnx = {}
    if engine == "onnxruntime" or (engine == "auto" and onnxruntime_is_faster(cfg, device) and precision != "bf16"):
        onnx = _onnx_sessions(checkpoint, cfg, generators, batch_norm, device, required=engine == "onnxruntime")
    if device.type == "cuda":
        return {d: Runtime("fp32" if precision == "fp32" else "bf16", onnx.get(d)) for d in generators}
    source = calibration_source(cfg, calibration)
    runtime = {}
    for direction, generator in generators.items():
        chosen = select(generator, onnx.get(direction) or generator, cfg, precision,
                        Int8Cache(checkpoint, direction, batch_norm, source),
                        functools.partial(calibration_inputs, cfg, direction, calibration))
        runtime[direction] = Runtime(chosen.precision, chosen.network or onnx.get(direction), chosen.reason)
    return runtime


def _onnx_sessions(path, cfg, generators, batch_norm, device, required: bool) -> dict[Direction, Network]:
    """onnxruntime sessions for the checkpoint's generators, exported once into the user's
    cache. Unless onnxruntime was asked for, a failure falls back to PyTorch with a warning."""
    try:
        from .onnx_graph import verified_export

        return {d: verified_export(path, g, cfg, d, batch_norm, device,
                                   cfg.model.in_channels if d == "AtoB" else cfg.model.out_channels)
                for d, g in generators.items()}
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
