"""ONNX: generators exported with torch.onnx (dynamic batch, height and width) and run with
onnxruntime, which translates U-Nets 1.4-1.8x as fast as PyTorch eager on the CPU (benchmarks/RESULTS.md).

Each file holds one direction's generator, with the checkpoint's config and the input size
multiple as metadata, so that a .onnx file alone is enough to translate. A UNSB model's file
holds one step of its bridge, G(image, noise), which `OnnxGenerator` runs as many times as asked.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..config import Direction, RunConfig
from ..errors import Img2ImgError
from ..files import atomic_path, atomic_write_text
from ..io.pixel_format import PixelFormat
from ..log import logger
from ..methods import METHODS, run_config_from_dict
from ..models.bridge import bridge_translate, sampled
from ..persist.checkpoint import checkpoint_config, load_checkpoint, load_generators, stored_directions

OPSET = 18
META_CONFIG, META_DIRECTION, META_SIZE_MULTIPLE, META_BATCH_NORM = (
    "img2img.config", "img2img.direction", "img2img.size_multiple", "img2img.batch_norm")
# What the graph's input and output tensors mean, for readers without img2img: channels, dtype
# and the value range mapped onto [-1, 1], e.g. "1 channel int16 -1024..3071".
META_INPUT, META_OUTPUT = "img2img.input_pixels", "img2img.output_pixels"


def export_generator(generator: torch.nn.Module, cfg: RunConfig, direction: Direction, out: Path | str,
                     batch_norm: str = "image") -> Path:
    """Writes `generator` (in eval mode) as ONNX, atomically. Per-image BatchNorm and InstanceNorm
    become InstanceNormalization; dropout is left out, as at inference."""
    out = Path(out)
    multiple = generator.size_multiple
    # A sample whose every spatial size is above 1 at the bottleneck, with height != width and
    # batch 2, so that the exporter specialises none of them.
    height = multiple * max(2, -(-128 // multiple))
    channels = cfg.model.in_channels if direction == "AtoB" else cfg.model.out_channels
    sample = torch.zeros(2, channels, height, height + multiple * max(1, -(-64 // multiple)))
    net = copy.deepcopy(generator).float().cpu().eval()
    # A UNSB generator: one step of its bridge, G(image, noise); OnnxGenerator runs the steps.
    noise = torch.zeros(2, generator.noise_dim) if hasattr(generator, "noise_dim") else None
    source, target = (PixelFormat.of_model(cfg.model, side) for side in ("in", "out"))
    if direction == "BtoA":
        source, target = target, source
    metadata = {META_CONFIG: json.dumps(cfg.to_dict()), META_INPUT: source.describe(), META_OUTPUT: target.describe(),
                META_DIRECTION: direction, META_SIZE_MULTIPLE: str(multiple), META_BATCH_NORM: batch_norm}
    with atomic_path(out, suffix=".onnx") as tmp:
        _export(BridgeStep(net) if noise is not None else net, sample, tmp, noise)
        import onnx

        model = onnx.load(str(tmp))
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(tmp))
    return out


class BridgeStep(torch.nn.Module):
    """A UNSB generator's one evaluation, G(image, noise), as the graph to export."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.generator(image, noise)


def _export(net: torch.nn.Module, sample: torch.Tensor, path: Path, noise: torch.Tensor | None = None) -> None:
    """With the TorchScript exporter: 0.3 s for a small U-Net where the torch.export-based one
    took 18 s (this CPU, torch 2.14), which a user pays at a model's first CPU translation."""
    dims = {0: "batch", 2: "height", 3: "width"}
    inputs, names, axes = (sample,), ["image"], {"image": dims, "translated": dims}
    if noise is not None:
        inputs, names, axes = (sample, noise), ["image", "noise"], {**axes, "noise": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, inputs, str(path), dynamo=False, input_names=names,
                              output_names=["translated"], opset_version=OPSET, dynamic_axes=axes)
        except ImportError as e:
            raise Img2ImgError(f"ONNX export needs the onnx package ({e})") from None


def onnx_paths(out: Path | str, directions: list[Direction]) -> dict[Direction, Path]:
    """OUT.onnx for a one-direction model; OUT.AtoB.onnx and OUT.BtoA.onnx for both."""
    out = Path(out)
    if len(directions) == 1:
        return {directions[0]: out}
    stem = out.name.removesuffix(".onnx")
    return {d: out.with_name(f"{stem}.{d}.onnx") for d in directions}


def export_checkpoint(checkpoint: Path | str, out: Path | str, directions: list[Direction] | None = None,
                      batch_norm: str = "image") -> list[Path]:
    """Exports a checkpoint's generators (all stored directions unless told) as ONNX files."""
    state = load_checkpoint(checkpoint)
    cfg = checkpoint_config(state)
    stored = stored_directions(state)
    wanted = directions or stored
    missing = [d for d in wanted if d not in stored]
    if missing:
        raise Img2ImgError(f"{checkpoint}: holds {' and '.join(stored)} only, not {' and '.join(missing)}")
    generators = load_generators(state, batch_norm)
    return [export_generator(generators[d], cfg, d, path, batch_norm) for d, path in onnx_paths(out, wanted).items()]


_hashed: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path | str) -> str:
    """The file's sha256, remembered while its size and modification time stay the same: loading
    one checkpoint names its ONNX export and each direction's int8 model by it (0.65 s for a
    359 MB CycleGAN checkpoint on this CPU, each time)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hashed:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _hashed[key] = digest.hexdigest()
    return _hashed[key]


def cached_export(checkpoint: Path | str, generator: torch.nn.Module, cfg: RunConfig, direction: Direction,
                  batch_norm: str) -> Path:
    """The generator's ONNX file in the user's cache, exported on first use; named by the
    checkpoint's content, so an edited checkpoint gets a fresh export. The export's own sha256
    is kept beside it and checked at each use: a cached file that was changed or cut short is
    exported again rather than trusted."""
    root = Path(os.environ.get("IMG2IMG_CACHE") or Path.home() / ".cache" / "img2img") / "onnx"
    path = root / f"{file_sha256(checkpoint)[:24]}-{direction}-{batch_norm}-opset{OPSET}.onnx"
    recorded = path.with_name(path.name + ".sha256")
    if path.is_file() and recorded.is_file() and recorded.read_text().strip() == file_sha256(path):
        return path
    if path.is_file():
        logger.warning(f"{path.name}: the cached ONNX export does not match its recorded sha256; exporting it again")
    export_generator(generator, cfg, direction, path, batch_norm)
    atomic_write_text(recorded, file_sha256(path) + "\n")
    return path


def disagreement(generator: torch.nn.Module, graph, in_channels: int, seed: int = 0) -> float:
    """Mean absolute difference, in [-1, 1] units, between a generator and a graph of it on one
    seeded probe image (one size multiple on a side, at least 64 px). A cache's record sits in a
    folder its writer can rewrite; the checkpoint's own network cannot be forged that way."""
    side = max(64, generator.size_multiple)
    x = torch.rand(1, in_channels, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        return float((generator.eval()(x).float() - graph(x).float()).abs().mean())


# An fp32 export agrees with its module to float rounding (measured at most 5.5e-6).
FP32_AGREEMENT = 1e-3


def verified_export(checkpoint: Path | str, generator: torch.nn.Module, cfg: RunConfig, direction: Direction,
                    batch_norm: str, device: torch.device, in_channels: int) -> "OnnxGenerator":
    """The cached ONNX export as a session, checked against the checkpoint's own generator;
    one that disagrees is exported again, and refused if it still does."""
    path = cached_export(checkpoint, generator, cfg, direction, batch_norm)
    graph = OnnxGenerator(path, device)
    if disagreement(generator, graph, in_channels) <= FP32_AGREEMENT:
        return graph
    logger.warning(f"{path.name}: the cached ONNX export disagrees with its checkpoint's network; exporting it again")
    path.unlink(missing_ok=True)
    graph = OnnxGenerator(cached_export(checkpoint, generator, cfg, direction, batch_norm), device)
    if disagreement(generator, graph, in_channels) > FP32_AGREEMENT:
        raise Img2ImgError(f"{path}: the ONNX export disagrees with the checkpoint's network")
    return graph


class OnnxGenerator:
    """A generator in onnxruntime: called as the torch module would be, on [N, C, H, W] tensors
    in [-1, 1] with H and W multiples of `size_multiple`. Sessions are thread-safe."""

    def __init__(self, path: Path | str, device: torch.device) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise Img2ImgError("running .onnx models needs the onnxruntime package") from None
        self.path = Path(path)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise Img2ImgError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_CONFIG not in meta:
            raise Img2ImgError(f"{path}: not an img2img ONNX export (no {META_CONFIG} metadata)")
        self.cfg = run_config_from_dict(json.loads(meta[META_CONFIG]))
        self.direction: Direction = meta[META_DIRECTION]
        self.size_multiple = int(meta[META_SIZE_MULTIPLE])
        self.precision = meta.get("img2img.precision", "fp32")
        self.providers = self.session.get_providers()
        # A UNSB model's graph is one step of its bridge, G(image, noise): called on an image
        # alone, it runs `steps` of them from noise `seed`, as its PyTorch generator does.
        noise = next((i for i in self.session.get_inputs() if i.name == "noise"), None)
        self.noise_dim = noise.shape[1] if noise is not None else None
        if noise is not None:
            self.num_timesteps = METHODS[self.cfg.method].translation_steps(self.cfg.method_config)
            self.tau = self.cfg.method_config.tau
            self.steps, self.seed = self.num_timesteps, 0

    def sampling(self, steps: int | None, seed: int) -> OnnxGenerator:
        """A UNSB graph translating in `steps` steps from noise `seed` (see NoiseResNetGenerator)."""
        if self.noise_dim is None:
            raise ValueError(f"steps and a seed are for UNSB models, not this {self.cfg.method} model")
        return sampled(self, steps, seed)

    def __call__(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise_dim is not None and noise is None:
            return bridge_translate(self, x, self.steps, self.seed)
        feed = {"image": np.ascontiguousarray(x.detach().float().cpu().numpy())}
        if noise is not None:
            feed["noise"] = np.ascontiguousarray(noise.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, feed)[0])
