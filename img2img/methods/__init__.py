"""The method registry: a method is its own file plus one line here."""
from __future__ import annotations

import dataclasses
import typing

import torch

from ..config import METHOD_TABLE, ModelConfig, RunConfig, SpeedConfig
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


def model_defaults() -> dict[str, str]:
    """Default text of the architecture settings whose default differs between methods."""
    out = {}
    for f in dataclasses.fields(ModelConfig):
        values = {name: getattr(cls.default_model(), f.name) for name, cls in METHODS.items()}
        if len(set(map(str, values.values()))) > 1:
            out[f.name] = ", ".join(f"{_words(v)} for {m}" for m, v in values.items())
    return out


def _words(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def method_settings() -> tuple[type, dict[str, str], dict[str, str]]:
    """Every method's settings as one dataclass (a setting several methods share appears once),
    with each setting's default text and the methods that use it: the CLI's flags and the app's
    settings form."""
    fields, used_by, defaults = {}, {}, {}
    for name, cls in METHODS.items():
        hints = typing.get_type_hints(cls.Config)
        for f in dataclasses.fields(cls.Config):
            fields.setdefault(f.name, (f.name, hints[f.name], dataclasses.field(default=None, metadata=f.metadata)))
            used_by.setdefault(f.name, []).append(name)
            defaults.setdefault(f.name, {})[name] = f.default
    merged = dataclasses.make_dataclass("MethodSettings", list(fields.values()))
    default_text = {k: ", ".join(f"{_words(v)} for {m}" for m, v in d.items()) if len(set(map(str, d.values()))) > 1
                    else str(next(iter(d.values()))) for k, d in defaults.items()}
    return merged, default_text, {k: ", ".join(v) for k, v in used_by.items()}


__all__ = ["CUT", "METHODS", "Colorization", "CycleGAN", "FastCUT", "CycleGANConfig", "ImagePool", "Pix2Pix",
           "Pix2PixConfig", "TrainingMethod", "build_method", "method_class",
           "method_settings", "model_defaults"]
