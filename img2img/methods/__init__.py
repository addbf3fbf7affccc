from ..config import ModelConfig, TrainConfig
from .base import TrainingMethod
from .cyclegan import CycleGAN, ImagePool
from .pix2pix import Pix2Pix

METHODS: dict[str, type[TrainingMethod]] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN}


def build_method(cfg: ModelConfig, train: TrainConfig, device, amp: bool = False) -> TrainingMethod:
    try:
        cls = METHODS[cfg.method]
    except KeyError:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}") from None
    return cls(cfg, train, device, amp)


__all__ = ["METHODS", "CycleGAN", "ImagePool", "Pix2Pix", "TrainingMethod", "build_method"]
