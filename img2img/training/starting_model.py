"""Starting a run from a trained model (`img2img train --init-from MODEL`) instead of from random
weights: on a CPU, such a run is ahead of the same one from scratch at every point of it
(benchmarks/RESULTS.md, "Starting from a trained model").

MODEL is a checkpoint or safetensors model (a file or its folder), a run folder (its best.pt,
else latest.pt), `hf://user/name[@revision]`, or a published model's name (`img2img pretrained
list`, downloaded into `checkpoints/` once). The generators' architecture comes from MODEL, and
a flag that contradicts it is refused in one line. Its generators' weights are loaded (both
directions of a CycleGAN where it holds both; a published CycleGAN generator brings its
published reverse, where there is one, and a direction with none starts fresh). Every other
network (discriminators, CUT's feature heads) is loaded where MODEL has one of the same shapes,
and otherwise starts fresh. The run records MODEL in its config (`train.init_from`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import AUTO_UNET, ModelConfig, RunConfig
from ..errors import Img2ImgError
from ..methods import METHODS
from ..persist.checkpoint import checkpoint_config, load_checkpoint, stored_directions
from ..persist.hub import is_hub_reference
from ..translate.pretrained import PRETRAINED, download_pretrained
from .run_folder import RunFolder

# What a trained generator fixes; the discriminator's settings stay the run's own.
GENERATOR_FIELDS = ("netG", "ngf", "norm", "dropout", "antialias", "init_type", "init_gain")
PUBLISHED_FOLDER = "checkpoints"


@dataclass
class StartingModel:
    """A trained model a run starts from: what the user named, and its checkpoint(s)."""

    reference: str
    state: dict[str, Any]
    # A published CycleGAN generator's reverse (its BtoA), where one is published.
    reverse: dict[str, Any] | None = None

    @property
    def cfg(self) -> RunConfig:
        return checkpoint_config(self.state)

    def generator_weights(self, direction: str) -> dict[str, Any] | None:
        """MODEL's weights for `direction` (its moving average where kept), or None."""
        if direction in stored_directions(self.state):
            return _translating_weights(self.state, direction)
        if direction == "BtoA" and self.reverse is not None and "AtoB" in stored_directions(self.reverse):
            return _translating_weights(self.reverse, "AtoB")
        return None


def find_starting_model(reference: str) -> StartingModel:
    """The model `reference` names, loaded; one line naming it and the problem otherwise."""
    text = reference.strip()
    path = Path(text)
    if is_hub_reference(text):
        return StartingModel(text, load_checkpoint(text))
    if path.is_dir() and (path / "checkpoints").is_dir():
        checkpoint = RunFolder(path).checkpoint()
        if checkpoint is None:
            raise Img2ImgError(f"--init-from {text}: a run folder with no checkpoint yet")
        return StartingModel(text, load_checkpoint(checkpoint))
    if path.exists():
        return StartingModel(text, load_checkpoint(path))
    if text in PRETRAINED:
        state = load_checkpoint(download_pretrained(text, PUBLISHED_FOLDER))
        reverse = published_reverse(text)
        return StartingModel(text, state, load_checkpoint(download_pretrained(reverse, PUBLISHED_FOLDER))
                             if reverse else None)
    raise Img2ImgError(f"--init-from {text}: no such file or run folder, and not hf://USER/NAME or a published "
                       "model's name (img2img pretrained list)")


def published_reverse(name: str) -> str | None:
    """The published CycleGAN generator the other way ("zebra2horse" for "horse2zebra",
    "winter2summer_yosemite" for "summer2winter_yosemite"), where there is one."""
    if PRETRAINED[name].method != "cyclegan":
        return None
    parts = name.split("_")
    for i, part in enumerate(parts):
        a, two, b = part.partition("2")
        if two:
            reverse = "_".join([*parts[:i], f"{b}2{a}", *parts[i + 1:]])
            entry = PRETRAINED.get(reverse)
            return reverse if entry is not None and entry.method == "cyclegan" else None
    return None


def generator_settings(starting: StartingModel, given: dict[str, Any]) -> dict[str, Any]:
    """The run's model settings for the generator: MODEL's, where `given` (the run's own model
    flags) does not contradict them; a contradiction is refused in one line."""
    source = starting.cfg.model
    settings = {}
    for name in GENERATOR_FIELDS:
        value = getattr(source, name)
        if name in given and given[name] != value and not (name == "netG" and given[name] == AUTO_UNET):
            flag = "--" + name.replace("_", "-")
            raise Img2ImgError(f"{flag} {given[name]} contradicts the model the run starts from ({starting.reference}: "
                               f"{name} {value}); leave {flag} out")
        settings[name] = value
    return settings


def load_starting_weights(networks: nn.ModuleDict, cfg: RunConfig, starting: StartingModel) -> str:
    """Copy MODEL's weights into a new run's networks (see the module's docstring); returns a
    line saying which networks now hold trained weights."""
    spec = METHODS[cfg.method]
    check_channels(cfg.model, starting)
    loaded = []
    for direction, key in spec.generator_keys.items():
        weights = starting.generator_weights(direction)
        if weights is None:
            continue
        for name in (key, spec.ema_keys.get(key)):
            if name in networks:
                _load(networks[name], weights, f"--init-from {starting.reference}: its {direction} generator")
                loaded.append(name)
    if not loaded:
        raise Img2ImgError(f"--init-from {starting.reference}: holds no generator {cfg.method} can start from "
                           f"(it translates {' and '.join(stored_directions(starting.state))})")
    source = starting.state["method"]["networks"]
    for name, net in networks.items():
        if name not in loaded and name in source and _shapes(net.state_dict()) == _shapes(source[name]):
            _load(net, source[name], name)
            loaded.append(name)
    return f"starting from {starting.reference}: {', '.join(loaded)} loaded, the rest fresh"


def check_channels(model: ModelConfig, starting: StartingModel) -> None:
    """The data's channels (read into the run's model settings) against MODEL's."""
    source = starting.cfg.model
    for side, ours, theirs in (("input", model.in_channels, source.in_channels),
                               ("output", model.out_channels, source.out_channels)):
        if ours != theirs:
            raise Img2ImgError(f"--init-from {starting.reference}: its generator's {side} has {theirs} channel"
                               f"{'s' * (theirs != 1)}, and this data's {ours}; start from a model made for such data, "
                               "or from scratch")


def _translating_weights(state: dict[str, Any], direction: str) -> dict[str, Any]:
    networks = state["method"]["networks"]
    return networks[METHODS[checkpoint_config(state).method].translating_key(direction, networks)]


def _shapes(weights: dict[str, Any]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in weights.items()}


def _load(net: nn.Module, weights: dict[str, Any], what: str) -> None:
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    except RuntimeError as e:
        problem = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
        raise Img2ImgError(f"{what} does not fit this run's network ({problem[:200]})") from None
