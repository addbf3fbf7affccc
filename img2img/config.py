"""Typed run configuration. It is saved inside every checkpoint, so a checkpoint alone
rebuilds its model for inference or resumption.

Field metadata (`setting(...)`) carries each setting's help text, and whether it may change
when a run resumes; the CLI generates its flags from it, so a setting is declared only here.
The method-specific settings (loss weights, image pool, ...) are each method's own dataclass,
in its own file under `methods/`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from .models.discriminators import DISCRIMINATORS
from .models.generators import AUTO_UNET, GENERATOR_BUILDERS
from .models.norm import NORM_LAYERS

Direction = Literal["AtoB", "BtoA"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)


def setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, cli: bool = True,
            fixed: bool = False, factory=None):
    """A config field. `fixed`: part of the trained model, so it cannot change on resume.
    `cli=False`: not a flag of its own (set through another argument, or not by users)."""
    metadata = {"help": help, "choices": choices, "cli": cli, "fixed": fixed}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    """The networks' architecture. Defaults are the pix2pix paper's; each method gives its own
    (`TrainingMethod.default_model`)."""

    netG: str = setting(AUTO_UNET, "generator: unet (depth from --size), unet_N for N-pixel multiples, "
                        "resnet_Nblocks for multiples of 4", choices=(AUTO_UNET, *GENERATOR_BUILDERS), fixed=True)
    netD: str = setting("patch", "discriminator", choices=tuple(DISCRIMINATORS), fixed=True)
    ngf: int = setting(64, "generator width", fixed=True)
    ndf: int = setting(64, "discriminator width", fixed=True)
    n_layers_d: int = setting(3, "PatchGAN depth (3 = 70x70 patches)", fixed=True)
    num_d: int = setting(2, "multiscale discriminator: number of scales", fixed=True)
    spectral_norm: bool = setting(False, "spectral normalisation of the discriminator's convolutions", fixed=True)
    norm: str = setting("batch", "normalisation layers", choices=tuple(NORM_LAYERS), fixed=True)
    dropout: bool = setting(True, "dropout in the generator (pix2pix's noise)", fixed=True)
    antialias: bool = setting(False, "ResNet generator: blurred (anti-aliased) down- and upsampling, as CUT's "
                              "reference code", fixed=True)
    in_channels: int = setting(3, "input channels", cli=False, fixed=True)
    out_channels: int = setting(3, "output channels", cli=False, fixed=True)


RESIZE_FILTERS = ("bicubic", "area")


@dataclass
class DataConfig:
    root: str = setting("", "dataset folder", cli=False)
    direction: Direction = setting("AtoB", "which side is the input", choices=DIRECTIONS)
    load_size: int = setting(286, "resize to this before cropping")
    resize: str = setting("bicubic", "resizing filter: bicubic (PIL's, antialiased, as the canonical code) or area "
                          "(cv2's, what runs from before checkpoint format 3 used)", choices=RESIZE_FILTERS)
    size: int = setting(256, "crop size: the networks' training resolution")
    flip: bool = setting(True, "random horizontal flips")
    serial_batches: bool = setting(False, "in-order data (unpaired: A[i] with B[i])")
    batch_size: int = setting(1, "images per step (per rank under torchrun)")
    num_workers: int = setting(2, "data loading processes")
    val_dir: str | None = setting(None, "validation folder (default DIR/val or DIR/test; testA+testB unpaired)")
    domain_a: str = setting("A", "name of domain A, for people (e.g. horse)")
    domain_b: str = setting("B", "name of domain B, for people (e.g. zebra)")


@dataclass
class SpeedConfig:
    """The fast path: switches that change how fast a step runs, never what it computes (up to
    bf16 rounding). None means the measured default for the device, batch size and generator
    (`resolve`; the measurements are in README's speed section)."""

    amp: bool | None = setting(None, "bf16 autocast; losses stay fp32 (default: on for CUDA at batch > 1, "
                               "else off)")
    channels_last: bool | None = setting(None, "channels_last memory format (default: on for CUDA at batch > 1 "
                                         "with a U-Net generator, else off)")
    compile: bool = setting(False, "torch.compile each network")
    cuda_graphs: bool = setting(False, "capture the whole training step as one CUDA graph and replay it (CUDA "
                                "only; one process)")
    fused_adam: bool = setting(True, "fused Adam kernel, which skips non-finite steps without a host sync")
    cudnn_benchmark: bool = setting(True, "let cuDNN pick the fastest convolution algorithms (CUDA only)")

    def resolve(self, device: torch.device, batch_size: int = 1, generator: str = AUTO_UNET) -> "SpeedConfig":
        """The switches that apply on `device`. The defaults follow the H200 measurements: at
        batch 1 plain fp32 beat bf16 with channels_last (pix2pix 89.9 against 69.6 img/s), at
        batch 64 bf16 won (2x), and channels_last lost 22% with ResNet generators, whose
        reflection padding and instance norm copy between layouts."""
        batched_cuda = device.type == "cuda" and batch_size > 1
        return SpeedConfig(
            amp=batched_cuda if self.amp is None else self.amp,
            channels_last=(batched_cuda and not generator.startswith("resnet")) if self.channels_last is None
            else self.channels_last,
            compile=self.compile,
            cuda_graphs=self.cuda_graphs,  # refused off CUDA (training/cuda_graph.py)
            fused_adam=self.fused_adam,
            cudnn_benchmark=self.cudnn_benchmark and device.type == "cuda",
        )

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply_globally(self) -> None:
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def describe(self) -> str:
        on = [f.name for f in dataclasses.fields(self) if getattr(self, f.name)]
        return ", ".join(on) if on else "plain fp32 eager"


@dataclass
class TrainConfig:
    out: str = setting("", "run folder", cli=False)
    epochs: int = setting(100, "epochs at constant learning rate")
    epochs_decay: int = setting(100, "epochs of linear decay to 0")
    max_steps: int | None = setting(None, "stop after this many steps in all")
    lr: float = setting(2e-4, "Adam learning rate")
    beta1: float = setting(0.5, "Adam beta1")
    beta2: float = setting(0.999, "Adam beta2")
    device: str = setting("auto", "auto, cpu or cuda")
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
    fid_val: str | None = setting(None, "folder to compute FID on instead of the validation split")
    fid_weights: str | None = setting(None, "Inception weights for FID (see `img2img fid --help`)")
    num_samples: int = setting(4, "images in each sample grid")


@dataclass
class RunConfig:
    """Everything a run is. `method_config` is the method's own dataclass (e.g. Pix2PixConfig)."""

    method: str = "pix2pix"
    model: ModelConfig = field(default_factory=ModelConfig)
    method_config: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.method_config is None:
            self.method_config = method_class(self.method).Config()

    @classmethod
    def for_method(cls, method: str, **sections: Any) -> "RunConfig":
        """A new run of `method` with its defaults; `sections` replace whole sections."""
        cls_ = method_class(method)
        epochs, epochs_decay = cls_.default_schedule
        return cls(method=method, model=sections.pop("model", cls_.default_model()),
                   method_config=sections.pop("method_config", cls_.Config()),
                   train=sections.pop("train", TrainConfig(epochs=epochs, epochs_decay=epochs_decay)), **sections)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """The current format only; `checkpoint.load_checkpoint` upgrades older ones first."""
        method = d.get("method", "pix2pix")
        train = dict(d.get("train", {}))
        speed = from_dict(SpeedConfig, train.pop("speed", {}))
        return cls(
            method=method,
            model=from_dict(ModelConfig, d.get("model", {})),
            method_config=from_dict(method_class(method).Config, d.get("method_config", {})),
            data=from_dict(DataConfig, d.get("data", {})),
            train=dataclasses.replace(from_dict(TrainConfig, train), speed=speed),
        )


def flag_name(field_name: str) -> str:
    """The command-line flag of a config field: --n-layers-d for n_layers_d."""
    return "--" + field_name.replace("_", "-")


def from_dict(cls, d: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**d)


def method_class(name: str):
    """The registered TrainingMethod class called `name`."""
    from .methods import METHODS  # methods import this module

    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
