"""Typed run configuration. It is saved inside every checkpoint, so a checkpoint alone
rebuilds its model for inference or resumption.

Field metadata (`setting(...)`) carries each setting's help text, and whether it may change
when a run resumes; the CLI generates its flags from it, so a setting is declared only here.
The method-specific settings (loss weights, image pool, ...) are each method's own dataclass,
in its own file under `methods/`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NamedTuple, get_args

from .errors import Img2ImgError
from .slurm import PREEMPT_SIGNALS

# The architectures' names, as settings offer them; models/ builds each (its registries hold the
# same names, which tests/test_structure.py checks). Here so that configs load no torch.
AUTO_UNET = "unet"  # the deepest canonical U-Net whose size fits the crop (unet_256 at 256, ...)
GENERATOR_NAMES = ("unet_256", "unet_128", "unet_64", "unet_32", "resnet_9blocks", "resnet_6blocks")
DISCRIMINATOR_NAMES = ("patch", "multiscale", "pixel")
NORM_NAMES = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")

Direction = Literal["AtoB", "BtoA"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)


class Accepts(NamedTuple):
    """What a numeric setting accepts: a test, and the words that say it."""

    test: Callable[[float], bool]
    text: str


def at_least(low: float) -> Accepts:
    return Accepts(lambda v: v >= low, f"a number of at least {low:g}")


POSITIVE = Accepts(lambda v: v > 0, "a number above 0")
IN_UNIT = Accepts(lambda v: 0 <= v < 1, "a number in [0, 1)")


def setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, cli: bool = True,
            fixed: bool = False, factory=None, accepts: Accepts | None = None, parse: Callable | None = None):
    """A config field. `fixed`: part of the trained model, so it cannot change on resume.
    `cli=False`: not a flag of its own (set through another argument, or not by users).
    `accepts`: what a numeric setting may be (default: at least 0; `check_settings` applies it).
    `parse`: how the flag's text becomes the value, where that is not int, float or str."""
    metadata = {"help": help, "choices": choices, "cli": cli, "fixed": fixed, "accepts": accepts, "parse": parse}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SettingSpec:
    """One command-line setting of a config dataclass, as the CLI's flags and the app's settings
    form both present it."""

    name: str
    kind: type  # bool, int, float or str
    choices: tuple | None
    help: str
    default: Any
    parse: Callable[[str], Any]

    @property
    def flag(self) -> str:
        return flag_name(self.name)

    def value_of(self, text: str) -> Any:
        """The value a flag's text gives, or an Img2ImgError in the CLI's words."""
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise Img2ImgError(f"{self.flag}: {text!r} holds a control character")
        if self.kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
                raise Img2ImgError(f"{self.flag}: {text!r} is not on or off")
            return lowered in ("true", "on", "yes", "1")
        try:
            value = self.parse(text.strip())
        except Exception as e:  # int()/float()'s ValueError, or a setting's own parse (argparse's error type)
            words = f"{text!r} is not {_KIND_WORDS[self.parse]}" if self.parse in _KIND_WORDS else str(e)
            raise Img2ImgError(f"{self.flag}: {words}") from None
        if self.choices and value not in self.choices:
            raise Img2ImgError(f"{self.flag}: invalid choice {value!r} (choose from {', '.join(map(str, self.choices))})")
        return value


_KIND_WORDS = {int: "an integer", float: "a number"}


def setting_specs(cls, defaults: dict[str, Any] | None = None) -> list[SettingSpec]:
    """The command-line settings of dataclass `cls` (every field but `cli=False` ones);
    `defaults` replaces the default shown for some."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        kind = hints[f.name]
        args = typing.get_args(kind)
        if type(None) in args:  # X | None
            kind = next(a for a in args if a is not type(None))
        choices = f.metadata.get("choices") or (typing.get_args(kind) if typing.get_origin(kind) is typing.Literal
                                                 else None)
        parse = f.metadata.get("parse") or (kind if kind in (int, float) else str)
        specs.append(SettingSpec(f.name, bool if kind is bool else (kind if kind in (int, float) else str),
                                 choices, f.metadata.get("help", ""), (defaults or {}).get(f.name, f.default), parse))
    return specs


def parse_size(text: str) -> int | tuple[int, int]:
    """'256' (square) or 'WxH', e.g. '512x256'."""
    import argparse

    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"{text!r}: give N (square) or WxH, e.g. 512x256")


def size_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(width, height) of a size setting."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def size_text(size: int | tuple[int, int]) -> str:
    w, h = size_pair(size)
    return str(w) if w == h else f"{w}x{h}"


@dataclass
class ModelConfig:
    """The networks' architecture. Defaults are the pix2pix paper's; each method gives its own
    (`MethodSpec.default_model`)."""

    netG: str = setting(AUTO_UNET, "generator: unet (depth from --size), unet_N for N-pixel multiples, "
                        "resnet_Nblocks for multiples of 4", choices=(AUTO_UNET, *GENERATOR_NAMES), fixed=True)
    netD: str = setting("patch", "discriminator", choices=DISCRIMINATOR_NAMES, fixed=True)
    ngf: int = setting(64, "generator width", fixed=True, accepts=at_least(1))
    ndf: int = setting(64, "discriminator width", fixed=True, accepts=at_least(1))
    n_layers_d: int = setting(3, "PatchGAN depth (3 = 70x70 patches)", fixed=True, accepts=at_least(1))
    num_d: int = setting(2, "multiscale discriminator: number of scales", fixed=True, accepts=at_least(1))
    spectral_norm: bool = setting(False, "spectral normalisation of the discriminator's convolutions", fixed=True)
    norm: str = setting("batch", "normalisation layers", choices=NORM_NAMES, fixed=True)
    dropout: bool = setting(True, "dropout in the generator (pix2pix's noise)", fixed=True)
    antialias: bool = setting(False, "ResNet generator: blurred (anti-aliased) down- and upsampling, as CUT's "
                              "reference code", fixed=True)
    antialias_d: bool = setting(False, "patch and multiscale discriminators: stride-1 convolutions, each followed by "
                                "a blurred (anti-aliased) subsampling, as CUT's reference code", fixed=True)
    init_type: str = setting("normal", "weight initialisation: normal (N(0, gain)), xavier, kaiming or orthogonal",
                             choices=INIT_TYPES, fixed=True)
    init_gain: float = setting(0.02, "scale of the initialisation (normal's std; xavier's and orthogonal's gain)",
                               fixed=True, accepts=POSITIVE)
    # The domains' pixels (img2img.io.pixel_format), read off the data when a run starts: domain A's
    # (the input's) and domain B's channels, dtype and the range mapped onto [-1, 1]. A dtype of
    # None means not read yet; checkpoints from before these fields are 8-bit RGB, 0..255.
    in_channels: int = setting(3, "input channels", cli=False, fixed=True, accepts=at_least(1))
    out_channels: int = setting(3, "output channels", cli=False, fixed=True, accepts=at_least(1))
    in_dtype: str | None = setting(None, "input pixel type", cli=False, fixed=True)
    out_dtype: str | None = setting(None, "output pixel type", cli=False, fixed=True)
    in_range: tuple[float, float] | None = setting(None, "input values mapped onto [-1, 1]", cli=False, fixed=True)
    out_range: tuple[float, float] | None = setting(None, "output values mapped onto [-1, 1]", cli=False, fixed=True)

    def __post_init__(self) -> None:
        # JSON (config.json, ONNX metadata) stores tuples as lists.
        for name in ("in_range", "out_range"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, (float(value[0]), float(value[1])))


RESIZE_FILTERS = ("bicubic", "area")
LR_POLICIES = ("linear", "step", "cosine", "plateau")
# The canonical code's --preprocess modes (data/transforms.py says what each does).
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def parse_range(text: str, flag: str) -> tuple[float, float] | str:
    """'LO,HI' as two floats, or 'auto'; one line naming the flag otherwise."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        lo, hi = (float(p) for p in text.split(","))
    except ValueError:
        raise Img2ImgError(f"{flag} {text}: give LO,HI (e.g. -1024,3071) or auto") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise Img2ImgError(f"{flag} {text}: LO must be less than HI, both finite")
    return lo, hi


def parse_channels(text: str) -> tuple[int, ...]:
    try:
        channels = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise Img2ImgError(f"--preview-channels {text}: give channel numbers, e.g. 3,2,1") from None
    if len(channels) not in (1, 3) or min(channels) < 0:
        raise Img2ImgError(f"--preview-channels {text}: one channel (grey) or three (R,G,B), each 0 or more")
    return channels


def _parse_range(text: str):
    import argparse

    try:
        return parse_range(text, "range")
    except Img2ImgError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("range ")) from None


def _parse_channels(text: str):
    import argparse

    try:
        return parse_channels(text)
    except Img2ImgError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclass
class DataConfig:
    root: str = setting("", "dataset folder", cli=False)
    direction: Direction = setting("AtoB", "which side is the input", choices=DIRECTIONS)
    load_size: int | tuple[int, int] = setting(
        286, "resize to this before cropping: N or WxH (N with a WxH crop scales the crop's shape to a shorter "
        "side of N)", parse=parse_size, accepts=at_least(1))
    resize: str = setting("bicubic", "resizing filter: bicubic (PIL's, antialiased, as the canonical code) or area "
                          "(cv2's, what runs from before checkpoint format 3 used)", choices=RESIZE_FILTERS)
    size: int | tuple[int, int] = setting(256, "crop size, the networks' training resolution: N (square) or WxH, "
                                          "e.g. 512x256", parse=parse_size, accepts=at_least(1))
    preprocess: str = setting("resize_and_crop", "resize_and_crop (to --load-size, then a random --size crop), "
                              "crop (a --size crop of the original), scale_width (width to --load-size, keeping the "
                              "aspect), scale_width_and_crop, or none (whole images, padded to the generator's "
                              "multiple)", choices=PREPROCESS_MODES)
    flip: bool = setting(True, "random horizontal flips")
    serial_batches: bool = setting(False, "in-order data (unpaired: A[i] with B[i])")
    batch_size: int = setting(1, "images per step (per rank under torchrun)", accepts=at_least(1))
    max_dataset_size: int | None = setting(None, "train on a fixed subset of N images of each domain, drawn once by "
                                           "--seed (the validation split is whole)", accepts=at_least(1))
    num_workers: int = setting(2, "data loading processes")
    range_a: tuple[float, float] | str | None = setting(
        None, "values of domain A mapped onto [-1, 1]: LO,HI (clipped; CT: -1024,3071) or auto (the 0.5/99.5 "
        "percentiles of a sample of the train split). Default: 0,255 for 8-bit, 0,65535 for 16-bit, auto "
        "otherwise", parse=_parse_range)
    range_b: tuple[float, float] | str | None = setting(None, "values of domain B mapped onto [-1, 1], as --range-a",
                                                        parse=_parse_range)
    slice_axis: int = setting(-1, "NIfTI volumes: the axis along which they are read as 2D slices (-1: the last)",
                              accepts=Accepts(lambda v: -3 <= v <= 2, "an axis of a 3D volume: -3 to 2"))
    preview_channels: tuple[int, ...] | None = setting(
        None, "data of more than 3 channels: the channels that previews (sample grids, the app, FID) show as "
        "R,G,B, or one as grey (default: the first three)", parse=_parse_channels)
    val_dir: str | None = setting(None, "validation folder (default DIR/val or DIR/test; testA+testB unpaired)")
    domain_a: str = setting("A", "name of domain A, for people (e.g. horse)")
    domain_b: str = setting("B", "name of domain B, for people (e.g. zebra)")

    def __post_init__(self) -> None:
        # JSON (config.json, ONNX metadata) stores tuples as lists.
        for name in ("size", "load_size", "range_a", "range_b", "preview_channels"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))

    @property
    def crop_size(self) -> tuple[int, int]:
        """(width, height) of the training crops."""
        return size_pair(self.size)

    @property
    def load_frame(self) -> tuple[int, int]:
        """(width, height) images are resized to before cropping: --load-size WxH, or N scaling
        the crop's shape so that its shorter side is N (N x N for square crops)."""
        if not isinstance(self.load_size, int):
            return size_pair(self.load_size)
        w, h = self.crop_size
        scale = self.load_size / min(w, h)
        return round(w * scale), round(h * scale)


@dataclass
class SpeedConfig:
    """The fast path: switches that change how fast a step runs, never what it computes (up to
    bf16 rounding). None means the measured default for the device, batch size and generator
    (`resolve`; the measurements are in docs/speed.md)."""

    amp: bool | None = setting(None, "bf16 autocast; losses stay fp32 (default: on for CUDA at batch > 1, "
                               "else off)")
    channels_last: bool | None = setting(None, "channels_last memory format (default: on for CUDA at batch > 1 "
                                         "with a U-Net generator, else off)")
    compile: bool = setting(False, "torch.compile each network")
    cuda_graphs: bool = setting(False, "capture the whole training step as one CUDA graph and replay it (CUDA "
                                "only; one process)")
    fused_adam: bool = setting(True, "fused Adam kernel, which skips non-finite steps without a host sync")
    cudnn_benchmark: bool = setting(True, "let cuDNN pick the fastest convolution algorithms (CUDA only)")

    def resolve(self, device_type: str, batch_size: int = 1, generator: str = AUTO_UNET) -> "SpeedConfig":
        """The switches that apply on `device`. The defaults follow the H200 measurements: at
        batch 1 plain fp32 beat bf16 with channels_last (pix2pix 89.9 against 69.6 img/s), at
        batch 64 bf16 won (2x), and channels_last lost 22% with ResNet generators, whose
        reflection padding and instance norm copy between layouts."""
        batched_cuda = device_type == "cuda" and batch_size > 1
        return SpeedConfig(
            amp=batched_cuda if self.amp is None else self.amp,
            channels_last=(batched_cuda and not generator.startswith("resnet")) if self.channels_last is None
            else self.channels_last,
            compile=self.compile,
            cuda_graphs=self.cuda_graphs,  # refused off CUDA (training/cuda_graph.py)
            fused_adam=self.fused_adam,
            cudnn_benchmark=self.cudnn_benchmark and device_type == "cuda",
        )

    def describe(self) -> str:
        on = [f.name for f in dataclasses.fields(self) if getattr(self, f.name)]
        return ", ".join(on) if on else "plain fp32 eager"


@dataclass
class TrainConfig:
    out: str = setting("", "run folder", cli=False)
    epochs: int = setting(100, "epochs at constant learning rate")
    epochs_decay: int = setting(100, "epochs of linear decay to 0")
    lr_policy: str = setting("linear", "learning-rate schedule: linear (constant for --epochs, then linear decay to 0 "
                             "over --epochs-decay), step (x0.1 every --lr-decay-epochs), cosine (to 0 over all "
                             "epochs) or plateau (x0.2 after 5 evaluations without a 1%% better val FID, or val L1 "
                             "for paired data without FID; at each --fid-every)", choices=LR_POLICIES)
    lr_decay_epochs: int = setting(50, "--lr-policy step: epochs between the x0.1 steps", accepts=at_least(1))
    max_steps: int | None = setting(None, "stop after this many steps in all", accepts=at_least(1))
    lr: float = setting(2e-4, "Adam learning rate", accepts=POSITIVE)
    beta1: float = setting(0.5, "Adam beta1", accepts=IN_UNIT)
    beta2: float = setting(0.999, "Adam beta2", accepts=IN_UNIT)
    device: str = setting("auto", "auto, cpu or cuda")
    init_from: str | None = setting(None, "start from a trained model's weights instead of random ones: a checkpoint "
                                    "or safetensors model, a run folder, hf://USER/NAME or a published model's name "
                                    "(img2img pretrained list); the generator's settings are the model's")
    speed: SpeedConfig = setting(None, "fast-path switches", cli=False, factory=SpeedConfig)
    sync_bn: bool = setting(False, "under torchrun: BatchNorm statistics over all ranks' batches (CUDA only)")
    seed: int = setting(0, "seed of weights, data order, augmentation and dropout")
    deterministic: bool = setting(False, "bitwise-reproducible runs on CUDA too: deterministic algorithms and "
                                  "cuDNN, no autotuning (slower; CPU runs are reproducible without it)")
    log_every: int = setting(50, "steps between metrics.csv rows; losses are read from the device only then "
                             "(0: at epoch ends and the end only)")
    sample_every: int = setting(500, "steps between sample grids (0: at the end only)")
    save_every: int = setting(1000, "steps between numbered checkpoints (0: at epoch ends and the end only)")
    keep: int = setting(2, "full checkpoints (weights and optimizer state, for resuming) to keep, newest first, "
                        "besides best.pt (0 = all)")
    snapshot_every: int | None = setting(None, "epochs between generator snapshots (snapshots/*.pt: generators "
                                         "only, to translate or compare epochs; 0 = none). Default: about "
                                         "20 per run")
    snapshot_half: bool = setting(True, "snapshots in fp16 (half the size of fp32)")
    max_bad_steps: int = setting(20, "stop after this many non-finite steps in a row")
    log_grad_norm: bool = setting(False, "log gradient norms to metrics")
    fid_every: int | None = setting(None, "FID/KID on the validation split every N epochs (0 = never); keeps "
                                    "best.pt. Default: every epoch that completes ~1000 steps, when the "
                                    "Inception weights and a validation split exist")
    val_every: int = setting(0, "steps between val L1, PSNR and SSIM rows of a paired run (0: at its end only; "
                             "every run ends with them, and with FID/KID when the split holds 50 images)")
    fid_val: str | None = setting(None, "folder to compute FID on instead of the validation split")
    fid_weights: str | None = setting(None, "Inception weights for FID (see `img2img fid --help`)")
    num_samples: int = setting(4, "images in each sample grid", accepts=at_least(1))
    preempt_signal: str = setting("USR1", "under Slurm, the signal that says the job is about to be stopped "
                                  "(sbatch's --signal): the run saves a checkpoint at its step's end, then "
                                  "--on-preempt", choices=PREEMPT_SIGNALS)
    on_preempt: str = setting("requeue", "after the preemption signal's checkpoint: requeue (scontrol requeue this "
                              "job; it resumes with --resume auto) or exit (for the scheduler to requeue it)",
                              choices=("requeue", "exit"))


@dataclass
class RunConfig:
    """Everything a run is. `method_config` is the method's own dataclass (e.g. Pix2PixConfig);
    `img2img.methods` makes whole ones: `new_run_config` and `run_config_from_dict`."""

    method: str
    method_config: Any
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def flag_name(field_name: str) -> str:
    """The command-line flag of a config field: --n-layers-d for n_layers_d."""
    return "--" + field_name.replace("_", "-")


def from_dict(cls, d: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**d)


def check_settings(cfg: RunConfig) -> None:
    """Every numeric setting against what it accepts (at least 0 unless its field says), and the
    settings that must agree; an Img2ImgError names the flag and what it accepts."""
    sections = (cfg.model, cfg.method_config, cfg.data, cfg.train, cfg.train.speed)
    for section in sections:
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            accepts = f.metadata.get("accepts") or at_least(0)
            values = value if isinstance(value, tuple) and f.name in ("size", "load_size") else (value,)
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                if not math.isfinite(v) or not accepts.test(v):
                    raise Img2ImgError(f"{flag_name(f.name)} {size_text(value) if f.name in ('size', 'load_size') else value}:"
                                       f" must be {accepts.text}")
    t, data = cfg.train, cfg.data
    if t.epochs + t.epochs_decay < 1:
        raise Img2ImgError(f"--epochs {t.epochs} --epochs-decay {t.epochs_decay}: nothing to train; the two "
                           "together must be at least 1")
    if data.preprocess == "resize_and_crop":
        (w, h), (lw, lh) = data.crop_size, data.load_frame
        if w > lw or h > lh:
            raise Img2ImgError(f"--size {size_text(data.size)} is larger than --load-size "
                               f"{size_text(data.load_size)} ({lw}x{lh}): the crop must fit the resized image")
    for name in ("range_a", "range_b"):
        value = getattr(data, name)
        if isinstance(value, tuple) and not value[0] < value[1]:
            raise Img2ImgError(f"{flag_name(name)} {value[0]:g},{value[1]:g}: LO must be less than HI")
