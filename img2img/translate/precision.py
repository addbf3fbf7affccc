"""Reduced precision for CPU translation: int8 generators (onnxruntime static quantisation, per
channel, calibrated on the model's own input-domain images) and bf16 (torch CPU autocast), and
`auto`, which measures them against fp32 on the model's own images and keeps the fastest that
passes the quality gate. benchmarks/RESULTS.md ("The CPU's limit for translation") has the
figures that set the gate and the size floor.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import Direction, RunConfig
from ..errors import Img2ImgError
from ..files import atomic_path, atomic_write_text
from ..io.pixel_format import PixelFormat, resize_pixels
from ..io.readers import list_images, read_image
from ..log import logger
from ..methods import METHODS

PRECISIONS = ("auto", "fp32", "bf16", "int8")
META_PRECISION, META_CHECKPOINT, META_CALIBRATION, META_RECIPE = (
    "img2img.precision", "img2img.checkpoint_sha256", "img2img.calibration", "img2img.int8_recipe")
# How int8 models are made, recorded in each: a cached one made otherwise is made again.
INT8_RECIPE = ("qdq-per-channel, transposed convolutions as one phase convolution where taps agree, "
               "activations by their range then by the percentile, float layers chosen by the gate")
META_FLOAT_LAYERS = "img2img.int8_float_output_layers"
META_ACTIVATIONS = "img2img.int8_activation_calibration"
# How activation ranges are calibrated, tried in this order, each with FLOAT_OUTPUT_LAYER_CHOICES
# in turn. "minmax": each activation's range over the calibration images. "percentile": its
# 99.999th percentile, which clips rare values for a finer step. A clipped range ruins an image
# whose activations the calibration images rarely reach, and a gate on a few held-out images
# cannot see it: a ResNet-9 (CycleGAN's generator, trained on maps) calibrated by the percentile
# passed the gate on its held-out images but was 25.0 levels off at the 99.9th percentile on 1 of
# 200 maps images (18.5 pooled over the 100 val images); by its range it passes with one more
# layer in float, no slower (124.0 against 128.8 ms), and no image is over 6.2
# (benchmarks/int8_calibration.py; RESULTS.md, "int8 calibrated by range first"). Where the
# range's coarser step fails the gate, the percentile may pass.
ACTIVATION_CALIBRATIONS = ("minmax", "percentile")
# How many layers next to the output may stay in float, tried in turn: the fewest whose int8
# model keeps the held-out images within the gate is kept. The bundled maps U-Net with its
# decoder quantised (benchmarks/LOG.md, "Issue 64"): keeping the last 1, 2, 3 or 4 in float gave
# a mean of 1.93, 1.23, 0.78, 0.63 output levels and a 99.9th percentile of 17.8, 15.8, 13.3,
# 11.8; the gate first holds at 3. Each kept layer near the output is one of the most expensive.
FLOAT_OUTPUT_LAYER_CHOICES = (1, 2, 3, 4)
CALIBRATION_IMAGES = 32
GATE_IMAGES = 8
MEASURE_SECONDS = 1.0
# Below this `auto` keeps fp32 without measuring (a minute at a model's first use): int8 gains too
# little here for its risk. Measured (benchmarks/RESULTS.md): before the upsampling rewrite a 1.4
# GFLOP ResNet 0.89x and the 3.1 GFLOP bundled U-Net 0.86x on an AVX2 CPU; since it, on an
# AVX-512 VNNI CPU, the bundled U-Net 1.41x for the network but 1.05x for a folder (its time is
# in reading and writing files), and at 1024 px 1.16x with 26.0 levels at the 99.9th percentile,
# over the gate, which `auto` applies at the training size only ("int8 calibrated by range first").
MIN_GFLOP_FOR_INT8 = 5.0


@dataclass(frozen=True)
class QualityGate:
    """What `auto` accepts from a reduced precision, against the same model's fp32 outputs, in
    8-bit output levels (the output range split into 255), and how much faster it must be.
    Set from benchmarks/RESULTS.md ("The CPU's limit for translation"): an int8 maps U-Net 3.4
    levels off on average (99.9th percentile 30) lost 8% in FID and 9% in L1, while int8 models
    within 0.7 levels (99.9th percentile 13) moved FID and L1 by under 0.5%."""
    mean_levels: float = 1.0
    p999_levels: float = 16.0
    min_speedup: float = 1.15

    def failures(self, mean: float, p999: float, speedup: float) -> list[str]:
        found = []
        if mean > self.mean_levels:
            found.append(f"mean difference {mean:.2f} levels > {self.mean_levels}")
        if p999 > self.p999_levels:
            found.append(f"99.9th percentile {p999:.1f} levels > {self.p999_levels}")
        if speedup < self.min_speedup:
            found.append(f"{speedup:.2f}x the fp32 speed < {self.min_speedup}x")
        return found


GATE = QualityGate()


def bf16_is_native() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX). Without them torch emulates
    bf16 at a small fraction of the fp32 rate (0.4% on an AVX2 CPU, benchmarks/RESULTS.md)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def difference_levels(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """|difference| of network outputs in [-1, 1], in 8-bit levels of the output range."""
    return np.abs(reference.astype(np.float64) - other.astype(np.float64)).ravel() * 127.5


def psnr(levels: np.ndarray) -> float:
    mse = float(np.mean((levels / 255.0) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


# --- calibration images ------------------------------------------------------------------------

def calibration_source(cfg: RunConfig, folder: Path | str | None) -> str:
    """Where `calibration_inputs` reads from, in words; part of each cached int8 model's metadata."""
    if folder is not None:
        return f"--calibration {Path(folder).resolve()}"
    return f"the validation images of {cfg.data.val_dir or cfg.data.root}"


def calibration_inputs(cfg: RunConfig, direction: Direction, folder: Path | str | None = None,
                       count: int = CALIBRATION_IMAGES + GATE_IMAGES) -> list[np.ndarray]:
    """Up to `count` network inputs ([1, C, H, W] float32 in [-1, 1], at the training size) of
    the model's input domain in `direction`: the images of `folder`, or else those of the
    validation split the checkpoint was trained with, listed and read as files are (an A|B file
    gives its input's half); each as translation takes it (the method's codec, the model's
    formats)."""
    from ..data.folders import DomainFiles, validation_files

    spec = METHODS[cfg.method]
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise Img2ImgError(f"--calibration {folder}: not a folder")
        found = DomainFiles(tuple(list_images(folder, recursive=True)))
        if not found.files:
            raise Img2ImgError(f"--calibration {folder}: holds no images")
    else:
        found = validation_files(cfg, spec.dataset_kind, "A" if direction == "AtoB" else "B")
        if not found.files:
            raise Img2ImgError(f"int8 needs calibration images of the model's input: its validation split "
                               f"({cfg.data.val_dir or cfg.data.root}) is not here; give --calibration DIR")
    network = PixelFormat.of_model(cfg.model, "in" if direction == "AtoB" else "out")
    given = spec.codec.user_formats(direction)
    user = given[0] if given else network
    width, height = cfg.data.crop_size
    inputs = []
    for path in found.files:
        if len(inputs) == count:
            break
        try:
            pixels = read_image(path).array
        except Img2ImgError:
            continue  # a broken file calibrates nothing
        if found.half is not None:
            half = pixels.shape[1] // 2
            pixels = pixels[:, :half] if found.half == "left" else pixels[:, half:2 * half]
        pixels, _ = user.adapt(pixels, path.name)
        pixels = resize_pixels(spec.codec.to_network(pixels), width, height)
        inputs.append(network.encode(pixels)[None].numpy())
    if not inputs:
        raise Img2ImgError(f"int8: no calibration image reads ({calibration_source(cfg, folder)}); give "
                           "--calibration DIR")
    return inputs


def split_for_gate(inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration images, held-out images for the gate): the last GATE_IMAGES are held out
    where there are enough to spare; with fewer, both use all of them."""
    if len(inputs) >= 2 * GATE_IMAGES:
        return inputs[:-GATE_IMAGES], inputs[-GATE_IMAGES:]
    return inputs, inputs


def generator_gflop(generator: torch.nn.Module, size_multiple: int) -> float:
    """Forward GFLOP of its convolutions (a multiply-add as two) per 256x256 image, counted by
    hooks on a small input and scaled by the pixel count, which is exact for convolutions.
    (torch's FlopCounterMode gives the same count but costs seconds of imports at first use.)"""
    side = size_multiple * -(-64 // size_multiple)
    multiply_adds = []

    def count(module, inputs, output) -> None:
        kernel = module.weight[0].numel()  # in_channels / groups x kH x kW (ConvTranspose: out / groups x ...)
        elements = output.numel() if isinstance(module, torch.nn.Conv2d) else inputs[0].numel()
        multiply_adds.append(elements * kernel)

    hooks = [m.register_forward_hook(count) for m in generator.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    parameter = next(generator.parameters())
    x = torch.zeros(1, generator_in_channels(generator), side, side, dtype=parameter.dtype, device=parameter.device)
    try:
        with torch.no_grad():
            generator(x)
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * sum(multiply_adds) / 1e9 * (256 * 256) / (side * side)


def generator_in_channels(generator: torch.nn.Module) -> int:
    first = next(m for m in generator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
    return first.in_channels


# --- int8 --------------------------------------------------------------------------------------

def quantize_int8(fp32_onnx: Path, out: Path, inputs: list[np.ndarray], metadata: dict[str, str],
                  float_output_layers: int = 1, activations: str = "percentile") -> Path:
    """A static int8 copy of an fp32 ONNX generator, written atomically, in QDQ form so that
    onnxruntime fuses each quantised convolution into an integer one: weights per output channel
    (int8, 7 bits: AVX2's u8 x s8 multiply-add saturates at 8, onnxruntime's `reduce_range`
    case), activations per tensor (uint8) over `inputs`, by their range or their 99.999th
    percentile (`activations`: ACTIVATION_CALIBRATIONS). Transposed convolutions arrive as
    ordinary ones (translate.phase_conv: onnxruntime has no integer ConvTranspose). What stays float: the layer that reads the image (on a
    CycleGAN ResNet, keeping it and the output layer took the mean difference from 3.1 to 0.6
    output levels) and the `float_output_layers` nearest the output; a rewritten layer is
    several Conv nodes under one module name, all kept."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph_inputs = {i.name: i for i in onnx.load(str(fp32_onnx)).graph.input}
    noise_dim = graph_inputs["noise"].type.tensor_type.shape.dim[1].dim_value if "noise" in graph_inputs else None

    class Reader(CalibrationDataReader):
        """Each calibration image; with a UNSB graph's noise input, a seeded noise vector too."""

        def __init__(self) -> None:
            self.remaining = iter(inputs)
            self.noise = np.random.default_rng(0)

        def get_next(self):
            x = next(self.remaining, None)
            if x is None:
                return None
            if noise_dim is None:
                return {"image": x}
            return {"image": x, "noise": self.noise.standard_normal((len(x), noise_dim), dtype=np.float32)}

    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent) as work, atomic_path(out, suffix=".onnx") as tmp, \
            _quiet_root_logger():
        pre = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        # ONNX keeps nodes in topological order: the first and last convolutions touch the image.
        convolutions = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
        layers = list(dict.fromkeys(name.rpartition("/")[0] for name in convolutions))  # modules, in order
        in_float = {layers[0], *layers[-float_output_layers:]}
        kept = [name for name in convolutions if name.rpartition("/")[0] in in_float]
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=kept, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile}[activations])
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(tmp))
    return out


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantiser warns through the root logger about graph details (biases held as
    constants, optional pre-processing) that do not concern a user, and prints its percentiles."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def int8_recipe_summary(path: Path) -> str:
    """How an int8 model of write_int8 was made, from its metadata, in words."""
    meta = onnx_metadata(path)
    activations = {"minmax": "by their range", "percentile": "by the percentile"}.get(meta.get(META_ACTIVATIONS), "?")
    return f"activations calibrated {activations}, {meta.get(META_FLOAT_LAYERS, '?')} layer(s) next to the output in float"


def int8_cache_path(checkpoint: Path, checkpoint_sha: str, direction: Direction, batch_norm: str) -> Path:
    """In img2img's cache (`IMG2IMG_CACHE`, default ~/.cache/img2img), named by the checkpoint's
    content: never in a model's or a run's folder, which hold what their owners put there."""
    name = f"{checkpoint.stem}.{checkpoint_sha[:16]}.{direction}.{batch_norm}.int8.onnx"
    return Path(os.environ.get("IMG2IMG_CACHE") or Path.home() / ".cache" / "img2img") / "int8" / name


def cached_int8(checkpoint: Path | str, generator: torch.nn.Module, cfg: RunConfig, direction: Direction,
                batch_norm: str, calibration: Callable[[], list[np.ndarray]], calibration_key: str) -> Path:
    """The checkpoint's int8 generator, quantised once and reused while its checkpoint's sha256,
    its calibration source (`calibration_key`) and its own recorded sha256 all still match;
    otherwise built again, saying why."""
    from .onnx_graph import file_sha256

    checkpoint = Path(checkpoint)
    sha = file_sha256(checkpoint)
    path = int8_cache_path(checkpoint, sha, direction, batch_norm)
    recorded = path.with_name(path.name + ".sha256")
    problem = _stale(path, recorded, sha, direction, calibration_key)
    if problem is None:
        return path
    if path.exists():
        logger.warning(f"{path.name}: {problem}; quantising again")
    inputs, held_out = split_for_gate(calibration())
    write_int8(generator, cfg, direction, batch_norm, path, inputs, sha, calibration_key, held_out)
    atomic_write_text(recorded, file_sha256(path) + "\n")
    logger.info(f"{checkpoint.name}: int8 {direction} generator calibrated on {len(inputs)} images of {calibration_key}, cached as {path}")
    return path


def write_int8(generator: torch.nn.Module, cfg: RunConfig, direction: Direction, batch_norm: str, path: Path,
               inputs: list[np.ndarray], checkpoint_sha: str, calibration_key: str,
               held_out: list[np.ndarray] | tuple = ()) -> Path:
    """The generator exported as fp32 ONNX (in a scratch folder), its transposed convolutions
    rewritten, and quantised into `path`, with the export's metadata and the int8 keys. The first
    of ACTIVATION_CALIBRATIONS, with the fewest layers next to the output in float, that keeps
    `held_out` within the gate (each calibration with FLOAT_OUTPUT_LAYER_CHOICES in turn; the last
    tried where none does, for `auto` to refuse)."""
    from .onnx_graph import OnnxGenerator, export_generator
    from .phase_conv import rewrite_transposed

    path.parent.mkdir(parents=True, exist_ok=True)
    parameter = next(generator.parameters())
    with torch.no_grad():
        references = [generator(torch.from_numpy(x).to(parameter)).float().cpu().numpy() for x in held_out]
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        fp32 = export_generator(rewrite_transposed(generator), cfg, direction, Path(work) / "fp32.onnx", batch_norm)
        for activations in ACTIVATION_CALIBRATIONS:
            for float_layers in FLOAT_OUTPUT_LAYER_CHOICES:
                metadata = onnx_metadata(fp32) | {META_PRECISION: "int8", META_CHECKPOINT: checkpoint_sha,
                                                  META_CALIBRATION: calibration_key, META_RECIPE: INT8_RECIPE,
                                                  META_FLOAT_LAYERS: str(float_layers), META_ACTIVATIONS: activations}
                quantize_int8(fp32, path, inputs, metadata, float_layers, activations)
                if not held_out:
                    return path
                graph = OnnxGenerator(path, torch.device("cpu"))
                levels = np.concatenate([difference_levels(r, graph(torch.from_numpy(x)).numpy())
                                         for x, r in zip(held_out, references)])
                if not GATE.failures(float(levels.mean()), float(np.percentile(levels, 99.9)), GATE.min_speedup):
                    return path
        return path


def _stale(path: Path, recorded: Path, sha: str, direction: Direction, calibration_key: str) -> str | None:
    from .onnx_graph import META_DIRECTION, file_sha256

    if not path.is_file():
        return "not built"
    if not recorded.is_file() or recorded.read_text().strip() != file_sha256(path):
        return "the cached file does not match its recorded sha256"
    try:
        meta = onnx_metadata(path)
    except Exception:  # onnx raises its own types for an unreadable file
        return "the cached file does not read as ONNX"
    if meta.get(META_CHECKPOINT) != sha or meta.get(META_DIRECTION) != direction or meta.get(META_PRECISION) != "int8":
        return "the cached file was made from another checkpoint"
    if meta.get(META_CALIBRATION) != calibration_key:
        return f"calibrated on {meta.get(META_CALIBRATION)}, not {calibration_key}"
    if meta.get(META_RECIPE) != INT8_RECIPE:
        return "made by an older recipe"
    return None


# --- auto --------------------------------------------------------------------------------------

@dataclass
class Measurement:
    """A reduced precision against fp32 on the model's own images."""
    precision: str
    images: int
    mean_levels: float
    p999_levels: float
    psnr_db: float
    fp32_images_per_s: float
    images_per_s: float

    @property
    def speedup(self) -> float:
        return self.images_per_s / self.fp32_images_per_s

    def describe(self) -> str:
        return (f"{self.precision}: {self.images_per_s:.2f} against {self.fp32_images_per_s:.2f} images/s "
                f"({self.speedup:.2f}x), mean {self.mean_levels:.2f} levels, 99.9th percentile "
                f"{self.p999_levels:.1f}, PSNR {self.psnr_db:.1f} dB over {self.images} images")


def measure(reference: Callable[[torch.Tensor], torch.Tensor], candidate: Callable[[torch.Tensor], torch.Tensor],
            precision: str, inputs: list[np.ndarray], seconds: float | None = None) -> Measurement:
    """Quality and speed of `candidate` against `reference`, batch 1, on `inputs`, each timed
    for at least `seconds` (default MEASURE_SECONDS)."""
    seconds = MEASURE_SECONDS if seconds is None else seconds
    levels = []
    for x in inputs:
        xt = torch.from_numpy(x)
        levels.append(difference_levels(reference(xt).numpy(), candidate(xt).numpy()))
    found = np.concatenate(levels)
    return Measurement(precision, len(inputs), float(found.mean()), float(np.percentile(found, 99.9)),
                       psnr(found), _rate(reference, inputs, seconds), _rate(candidate, inputs, seconds))


def _rate(net, inputs: list[np.ndarray], seconds: float) -> float:
    """Images per second over at least `seconds` (after one warm-up image)."""
    tensors = [torch.from_numpy(x) for x in inputs]
    net(tensors[0])
    done, start = 0, time.perf_counter()
    while True:
        net(tensors[done % len(tensors)])
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and done >= len(tensors):
            return done / elapsed


@dataclass
class Choice:
    """What `auto` chose for one direction, and why, as one line."""
    precision: str
    reason: str
    measurements: list[Measurement]

    def to_dict(self) -> dict:
        return {"precision": self.precision, "reason": self.reason,
                "measurements": [asdict(m) for m in self.measurements]}

    @classmethod
    def from_dict(cls, data: dict) -> Choice:
        return cls(data["precision"], data["reason"], [Measurement(**m) for m in data["measurements"]])


def choose(measurements: list[Measurement], gate: QualityGate) -> Choice:
    """The fastest measured precision that passes `gate`, else fp32 with every failure named."""
    passing = [m for m in measurements if not gate.failures(m.mean_levels, m.p999_levels, m.speedup)]
    if passing:
        best = max(passing, key=lambda m: m.images_per_s)
        return Choice(best.precision, f"auto chose {best.describe()}", measurements)
    reasons = "; ".join(f"{m.precision}: {', '.join(gate.failures(m.mean_levels, m.p999_levels, m.speedup))}"
                        for m in measurements)
    return Choice("fp32", f"auto stays fp32: no reduced precision passed the gate ({reasons})", measurements)


# --- one direction of a Translator --------------------------------------------------------------

# An int8 graph against its fp32 generator on a probe image, in [-1, 1] units: measured 0.0074
# for the bundled model (a negated graph: 1.7).
INT8_AGREEMENT = 0.1


@dataclass
class Selection:
    """The precision a direction translates at, the onnxruntime network that runs it (None: the
    Translator's own fp32 or bf16 path) and why, in one line."""
    precision: str
    network: Callable[[torch.Tensor], torch.Tensor] | None
    reason: str


@dataclass(frozen=True)
class Int8Cache:
    """Where a generator's int8 model and auto's measured choice are cached (beside `checkpoint`),
    and what they depend on: the direction, the BatchNorm mode and the calibration source."""
    checkpoint: Path
    direction: Direction
    batch_norm: str
    calibration: str  # calibration_source's words


def select(generator: torch.nn.Module, reference: Callable[[torch.Tensor], torch.Tensor], cfg: RunConfig,
           requested: str, cache: Int8Cache, calibration: Callable[[], list[np.ndarray]]) -> Selection:
    """The `requested` precision for one CPU generator (`reference`: what runs it at fp32, the
    module or its fp32 onnxruntime session). `auto` measures against `GATE` once per cache key
    (the choice is recorded beside the int8 model). `calibration()` gives the calibration
    arrays; it is called only when an int8 model is made or measured."""
    from .onnx_graph import OnnxGenerator, disagreement, file_sha256

    loaded: list[np.ndarray] = []

    def calibration_arrays() -> list[np.ndarray]:
        if not loaded:
            loaded.extend(calibration())
        return loaded

    def int8_network() -> OnnxGenerator:
        """The cached int8 graph, checked against the fp32 generator on a probe image: one that
        disagrees (changed by whoever can write the cache) is quantised again."""
        channels = cfg.model.in_channels if cache.direction == "AtoB" else cfg.model.out_channels
        for attempt in range(2):
            path = cached_int8(cache.checkpoint, generator, cfg, cache.direction, cache.batch_norm,
                               calibration_arrays, cache.calibration)
            graph = OnnxGenerator(path, torch.device("cpu"))
            if disagreement(generator, graph, channels) <= INT8_AGREEMENT:
                return graph
            logger.warning(f"{path.name}: the cached int8 model disagrees with its checkpoint's network; "
                           "quantising it again")
            path.unlink(missing_ok=True)
        raise Img2ImgError(f"{path}: the int8 model disagrees with the checkpoint's network")

    if requested == "fp32":
        return Selection("fp32", None, "fp32, as asked")
    if requested == "bf16":
        note = "" if bf16_is_native() else " (this CPU has no bf16 instructions: expect it far slower than fp32)"
        return Selection("bf16", None, f"bf16, as asked{note}")
    if requested == "int8":
        graph = int8_network()
        return Selection("int8", graph, f"int8, as asked, calibrated on {cache.calibration} "
                                        f"({int8_recipe_summary(Path(graph.path))})")
    gflop = generator_gflop(generator, generator.size_multiple)
    if gflop < MIN_GFLOP_FOR_INT8:
        # Said only in precision_reason: most models are this small, and nothing was measured.
        return Selection("fp32", None, f"auto: fp32; at {gflop:.2f} GFLOP per 256x256 image int8 has nothing to gain")
    name = cache.checkpoint.name
    record = int8_cache_path(cache.checkpoint, file_sha256(cache.checkpoint), cache.direction, cache.batch_norm)
    record = record.with_name(record.name.removesuffix(".onnx") + ".auto.json")
    gate = GATE
    choice = _recorded_choice(record, cache.calibration, gate)
    if choice is None:
        try:
            inputs = calibration_arrays()
        except Img2ImgError as e:
            return Selection("fp32", None, f"auto stays fp32: {e}")
        _, held_out = split_for_gate(inputs)
        logger.info(f"{name} {cache.direction}: measuring int8 against fp32 on {len(held_out)} images of "
                    f"{cache.calibration}, once for this checkpoint")
        measurements = [measure(_no_grad(reference), int8_network(), "int8", held_out)]
        if bf16_is_native():
            measurements.append(measure(_no_grad(reference), _no_grad(generator, bf16=True), "bf16", held_out))
        choice = choose(measurements, gate)
        logger.info(f"{name} {cache.direction}: {choice.reason}")
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"calibration": cache.calibration, "gate": asdict(gate),
                                             **choice.to_dict()}, indent=1) + "\n")
    return Selection(choice.precision, int8_network() if choice.precision == "int8" else None, choice.reason)


def _recorded_choice(record: Path, key: str, gate: QualityGate) -> Choice | None:
    try:
        data = json.loads(record.read_text())
        if data["calibration"] != key or data["gate"] != asdict(gate):
            return None
        return Choice.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _no_grad(net, bf16: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return net(x).float()
    return run


def export_int8(cfg: RunConfig, generators: dict[Direction, torch.nn.Module], checkpoint: Path | str,
                out: Path | str, directions: list[Direction] | None = None, batch_norm: str = "image",
                calibration_dir: Path | str | None = None) -> list[Path]:
    """int8 ONNX files of `generators` (the fp32 generators of `checkpoint`, made with
    `batch_norm`), at the paths of `onnx_graph.onnx_paths`, with the fp32 export's metadata and
    the int8 keys, for onnxruntime anywhere: made as translation makes its own, gate included."""
    from .onnx_graph import file_sha256, onnx_paths

    wanted = directions or list(generators)
    missing = [d for d in wanted if d not in generators]
    if missing:
        raise Img2ImgError(f"{checkpoint}: holds {' and '.join(generators)} only, not {' and '.join(missing)}")
    sha, key = file_sha256(checkpoint), calibration_source(cfg, calibration_dir)
    written = []
    for direction, path in onnx_paths(out, wanted).items():
        inputs, held_out = split_for_gate(calibration_inputs(cfg, direction, calibration_dir))
        written.append(write_int8(generators[direction], cfg, direction, batch_norm, path, inputs, sha, key, held_out))
    return written
