import torch

from ..config import ModelConfig, TrainConfig
from ..speed import SpeedSettings
from .base import TrainingMethod
from .cyclegan import CycleGAN, ImagePool
from .pix2pix import Pix2Pix

METHODS: dict[str, type[TrainingMethod]] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN}


def build_method(cfg: ModelConfig, train: TrainConfig, device, speed: SpeedSettings | None = None) -> TrainingMethod:
    """`speed` defaults to what `train` asks for on `device`."""
    try:
        cls = METHODS[cfg.method]
    except KeyError:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}") from None
    return cls(cfg, train, device, speed or SpeedSettings.resolve(train, torch.device(device)))


__all__ = ["METHODS", "CycleGAN", "ImagePool", "Pix2Pix", "TrainingMethod", "build_method"]
