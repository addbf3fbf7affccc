"""The method registry: a method is its own file plus one line here."""
from __future__ import annotations

import torch

from ..config import METHOD_TABLE, RunConfig, SpeedConfig
from ..config import registered_method as method_class  # the lookup in METHODS, by name
from .base import TrainingMethod
from .colorization import Colorization
from .cut import CUT, FastCUT
from .cyclegan import CycleGAN, CycleGANConfig, ImagePool
from .pix2pix import Pix2Pix, Pix2PixConfig

# The same dict as config.METHOD_TABLE, through which a config finds its method by name.
METHODS: dict[str, type[TrainingMethod]] = METHOD_TABLE
METHODS.update({
    "pix2pix": Pix2Pix,
    "cyclegan": CycleGAN,
    "cut": CUT,
    "fastcut": FastCUT,
    "colorization": Colorization,
})


def build_method(cfg: RunConfig, device: torch.device | str, speed: SpeedConfig | None = None) -> TrainingMethod:
    """The run's method with fresh networks and optimizers. `speed` defaults to what the run
    asks for, resolved for `device`."""
    device = torch.device(device)
    speed = speed or cfg.train.speed.resolve(device, cfg.data.batch_size, cfg.model.netG)
    return METHODS[cfg.method](cfg.model, cfg.method_config, cfg.train, device, speed)


__all__ = ["CUT", "METHODS", "Colorization", "CycleGAN", "FastCUT", "CycleGANConfig", "ImagePool", "Pix2Pix",
           "Pix2PixConfig", "TrainingMethod", "build_method", "method_class"]
