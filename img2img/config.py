"""Typed run configuration. It is saved inside every checkpoint, so a checkpoint alone
rebuilds its model for inference or resumption."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Method = Literal["pix2pix", "cyclegan"]
Direction = Literal["AtoB", "BtoA"]
Norm = Literal["batch", "instance", "none"]
GanMode = Literal["vanilla", "lsgan", "hinge"]


@dataclass
class ModelConfig:
    """Networks and objective. Defaults are the pix2pix paper's; `for_method` gives CycleGAN's."""

    method: Method = "pix2pix"
    netG: str = "unet_256"
    netD: str = "patch"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    norm: Norm = "batch"
    dropout: bool = True
    in_channels: int = 3
    out_channels: int = 3
    gan_mode: GanMode = "vanilla"
    lambda_l1: float = 100.0
    lambda_cycle: float = 10.0
    # Identity weight as a fraction of lambda_cycle, as in the CycleGAN code.
    lambda_identity: float = 0.5
    pool_size: int = 50

    @classmethod
    def for_method(cls, method: Method) -> "ModelConfig":
        if method == "pix2pix":
            return cls()
        if method == "cyclegan":
            return cls(method="cyclegan", netG="resnet_9blocks", norm="instance", dropout=False, gan_mode="lsgan")
        raise ValueError(f"unknown method {method!r}; choose pix2pix or cyclegan")


@dataclass
class DataConfig:
    root: str = ""
    direction: Direction = "AtoB"
    load_size: int = 286
    size: int = 256
    flip: bool = True
    serial_batches: bool = False
    batch_size: int = 1
    num_workers: int = 2
    # Optional explicit validation folder; by default val/ or test/ under root.
    val_dir: str | None = None
    # Names of the two domains, for people (e.g. "horse", "zebra").
    domain_a: str = "A"
    domain_b: str = "B"


@dataclass
class TrainConfig:
    out: str = ""
    epochs: int = 100
    epochs_decay: int = 100
    max_steps: int | None = None
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    device: str = "auto"
    # Speed switches (img2img/speed.py). None = the measured default for the device: bf16
    # autocast and channels_last on CUDA, neither on CPU, where both measured slower.
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    fused_adam: bool = True
    cudnn_benchmark: bool = True
    # Under torchrun: synchronise BatchNorm statistics across ranks (CUDA only).
    sync_bn: bool = False
    seed: int = 0
    # Steps between metrics rows. Losses stay on the device in between: one host sync per row.
    log_every: int = 50
    sample_every: int = 500
    save_every: int = 1000
    # Numbered checkpoints to keep (0 keeps all); latest.pt is always kept.
    keep: int = 0
    max_bad_steps: int = 20
    log_grad_norm: bool = False
    # FID/KID on the validation split every N epochs (0 = never).
    fid_every: int = 0
    fid_val: str | None = None
    fid_weights: str | None = None
    num_samples: int = 4


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return cls(
            model=_from_dict(ModelConfig, d.get("model", {})),
            data=_from_dict(DataConfig, d.get("data", {})),
            train=_from_dict(TrainConfig, d.get("train", {})),
        )


def _from_dict(cls, d: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**d)
