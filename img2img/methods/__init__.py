"""The method registry: every method by name, written out here. A method is its own file (its
Config, TrainingMethod and MethodSpec) plus one line in METHODS. Nothing registers itself:
importing `img2img` loads no method."""
from __future__ import annotations

import dataclasses
import shlex
import typing
from typing import Any

import torch

from ..config import DataConfig, ModelConfig, RunConfig, SpeedConfig, TrainConfig, flag_name, from_dict
from ..registry import Registry
from . import colorization, cut, cyclegan, pix2pix, unsb
from .base import TrainingMethod
from .spec import MethodSpec, PixelCodec

METHODS: Registry[MethodSpec] = Registry("method", {
    "pix2pix": pix2pix.SPEC,
    "cyclegan": cyclegan.SPEC,
    "cut": cut.SPEC,
    "fastcut": cut.FASTCUT_SPEC,
    "colorization": colorization.SPEC,
    "unsb": unsb.SPEC,
})


def new_run_config(method: str, **sections: Any) -> RunConfig:
    """A new run of `method` with its defaults; `sections` replace whole sections."""
    return METHODS[method].new_run(method, **sections)


def run_config_from_dict(d: dict[str, Any]) -> RunConfig:
    """The current format only; `checkpoint.load_checkpoint` upgrades older ones first."""
    method = d.get("method", "pix2pix")
    train = dict(d.get("train", {}))
    speed = from_dict(SpeedConfig, train.pop("speed", {}))
    return RunConfig(
        method=method,
        method_config=from_dict(METHODS[method].config, d.get("method_config", {})),
        model=from_dict(ModelConfig, d.get("model", {})),
        data=from_dict(DataConfig, d.get("data", {})),
        train=dataclasses.replace(from_dict(TrainConfig, train), speed=speed),
    )


def build_method(cfg: RunConfig, device: torch.device | str, speed: SpeedConfig | None = None) -> TrainingMethod:
    """The run's method with fresh networks and optimizers. `speed` defaults to what the run
    asks for, resolved for `device`."""
    device = torch.device(device)
    speed = speed or cfg.train.speed.resolve(device.type, cfg.data.batch_size, cfg.model.netG)
    spec = METHODS[cfg.method]
    return spec.training(spec, cfg.model, cfg.method_config, cfg.train, device, speed)


def equivalent_command(cfg: RunConfig) -> str:
    """An `img2img train` command that makes this config: --model and --data, then a flag for
    every command-line setting whose value differs from the method's default."""
    base = new_run_config(cfg.method)
    words = ["img2img", "train", "--model", cfg.method]
    if cfg.data.root:
        words += ["--data", shlex.quote(cfg.data.root)]
    pairs = [(cfg.data, base.data), (cfg.model, base.model), (cfg.method_config, base.method_config),
             (cfg.train, base.train), (cfg.train.speed, base.train.speed)]
    for ours, default in pairs:
        for f in dataclasses.fields(ours):
            value = getattr(ours, f.name)
            if not f.metadata.get("cli", True) or value == getattr(default, f.name) or dataclasses.is_dataclass(value):
                continue
            if isinstance(value, bool):
                words.append(flag_name(f.name) if value else "--no-" + f.name.replace("_", "-"))
            elif value is not None:
                text = ("x" if f.name in ("size", "load_size") else ",").join(map(_number_text, value)) \
                    if isinstance(value, (tuple, list)) else _number_text(value)
                # A value that starts with "-" would read as a flag: --range-a=-1024,3071.
                words += [f"{flag_name(f.name)}={shlex.quote(text)}"] if text.startswith("-") else \
                    [flag_name(f.name), shlex.quote(text)]
    return " ".join(words)


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def model_defaults() -> dict[str, str]:
    """Default text of the architecture settings whose default differs between methods."""
    out = {}
    for f in dataclasses.fields(ModelConfig):
        values = {name: getattr(spec.default_model(), f.name) for name, spec in METHODS.items()}
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
    for name, spec in METHODS.items():
        hints = typing.get_type_hints(spec.config)
        for f in dataclasses.fields(spec.config):
            fields.setdefault(f.name, (f.name, hints[f.name], dataclasses.field(default=None, metadata=f.metadata)))
            used_by.setdefault(f.name, []).append(name)
            defaults.setdefault(f.name, {})[name] = f.default
    merged = dataclasses.make_dataclass("MethodSettings", list(fields.values()))
    default_text = {k: ", ".join(f"{_words(v)} for {m}" for m, v in d.items()) if len(set(map(str, d.values()))) > 1
                    else str(next(iter(d.values()))) for k, d in defaults.items()}
    return merged, default_text, {k: ", ".join(v) for k, v in used_by.items()}


__all__ = ["METHODS", "MethodSpec", "PixelCodec", "TrainingMethod", "build_method", "equivalent_command",
           "method_settings", "model_defaults", "new_run_config", "run_config_from_dict"]
