"""The config of a run about to start: new, or resumed from a checkpoint with some settings
changed. Settings that are part of the trained model cannot change on resume."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, flag_name
from ..errors import Img2ImgError
from ..log import logger
from ..methods import METHODS, new_run_config
from ..models import AUTO_UNET, fit_to_size
from ..persist.checkpoint import checkpoint_config, is_generators_only, load_checkpoint
from .checkpoint_files import load_newest_valid
from .starting_model import StartingModel, find_starting_model, generator_settings

# Section name -> {field: value} of settings given for this run; absent ones keep the base's.
Overrides = dict[str, dict[str, Any]]
SECTIONS = ("model", "method_config", "data", "train", "speed")


@dataclass
class RunStart:
    cfg: RunConfig
    # The checkpoint to continue from, and where it was read (None for a new run).
    state: dict[str, Any] | None = None
    resumed_from: Path | None = None
    # The trained model a new run starts from (`train.init_from`), loaded.
    starting: StartingModel | None = None


def default_out(data: str, method: str) -> str:
    return str(Path("runs") / f"{Path(data).resolve().name}_{method}")


def config_for_run(overrides: Overrides | None = None, method: str | None = None, data: str | None = None,
                   out: str | None = None, resume: str | None = None, base: RunConfig | None = None) -> RunStart:
    """A new run of `method` (default pix2pix), or of `base` (a saved config, e.g. the app's
    request), with `overrides`; or, with `resume` (a checkpoint path, or "auto" for the newest
    usable one in OUT/checkpoints), the checkpoint's run with `overrides` applied. A new run
    started from a trained model (`train.init_from`) takes its generator's settings."""
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    unknown = set(overrides) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown config sections {sorted(unknown)}")
    start = _find_checkpoint(method, data, out, resume)
    if base is not None and method and method != base.method:
        raise Img2ImgError(f"--model {method}: the config is a {base.method} run")
    starting = None
    if start is None:
        init_from = overrides.get("train", {}).get("init_from") or (base.train.init_from if base else None)
        starting = find_starting_model(init_from) if init_from else None
        # A run started from a model is of the model's method unless --model says otherwise.
        base = base or new_run_config(method or (starting.cfg.method if starting else "pix2pix"))
        state, path = None, None
    else:
        path, state = start
        base = checkpoint_config(state)
        if method and method != base.method:
            raise Img2ImgError(f"{path}: is a {base.method} checkpoint, not {method}")
    recipe = overrides.get("method_config", {}).get("recipe")
    if recipe is not None:
        if state is not None and recipe != getattr(base.method_config, "recipe", None):
            raise Img2ImgError(f"--recipe {recipe} cannot change when resuming: the run was started with "
                               f"{getattr(base.method_config, 'recipe', 'none')}")
        apply_recipe(base.method, recipe, overrides)
    if state is not None and overrides.get("train", {}).get("init_from", base.train.init_from) != base.train.init_from:
        raise Img2ImgError(f"--init-from cannot change when resuming: the run started from "
                           f"{base.train.init_from or 'random weights'}")
    if starting is not None:
        given = overrides.get("model", {})
        overrides["model"] = {**given, **generator_settings(starting, given)}
    if data:
        overrides.setdefault("data", {})["root"] = data
    if out:
        overrides.setdefault("train", {})["out"] = out
    cfg = apply_overrides(base, overrides, resuming=state is not None)
    if not cfg.data.root:
        raise Img2ImgError("--data is required: the dataset folder to train on")
    if not cfg.train.out:
        cfg.train.out = default_out(cfg.data.root, cfg.method)
    return RunStart(cfg, state, path, starting)


def apply_recipe(method: str, recipe: str, overrides: Overrides) -> None:
    """Fill in the recipe's settings that the run does not give explicitly."""
    recipes = METHODS[method].recipes
    if recipe not in recipes:
        raise Img2ImgError(f"--recipe {recipe}: {method} has {', '.join(recipes) or 'no recipes'}")
    for section, values in recipes[recipe].items():
        for name, value in values.items():
            overrides.setdefault(section, {}).setdefault(name, value)


def _find_checkpoint(method, data, out, resume) -> tuple[Path, dict[str, Any]] | None:
    if resume == "auto":
        if not (out or data):
            raise Img2ImgError("--resume auto needs --out (or --data, to find the default run folder)")
        out = out or default_out(data, method or "pix2pix")
        found = load_newest_valid(Path(out) / "checkpoints", warn=logger.warning)
        if found is None:
            logger.info(f"no usable checkpoint in {out}/checkpoints: starting a new run")
        return found
    if resume:
        state = load_checkpoint(resume, training_state=True)
        if is_generators_only(state):
            raise Img2ImgError(f"{resume}: holds the generators only (a snapshot or an export), no optimizer state, "
                               "so training cannot resume from it; resume from a full checkpoint (checkpoints/latest.pt)")
        return Path(resume), state
    return None


def apply_overrides(base: RunConfig, overrides: Overrides, resuming: bool = False) -> RunConfig:
    """`base` with `overrides`; when resuming, an architecture setting that differs from the
    checkpoint's is refused, and settings the method does not have are refused always."""
    model_changes = dict(overrides.get("model", {}))
    if model_changes.get("netG") == AUTO_UNET:
        size = overrides.get("data", {}).get("size", base.data.size)
        model_changes["netG"] = fit_to_size(dataclasses.replace(base.model, **model_changes), size).netG
    if resuming:
        for name, value in model_changes.items():
            stored = getattr(base.model, name)
            if value != stored:
                raise Img2ImgError(f"{flag_name(name)} {value} cannot change when resuming: the checkpoint's network "
                                   f"was built with {stored}. Leave it out, or start a new run in another --out")
    method_fields = {f.name for f in dataclasses.fields(base.method_config)}
    for name in overrides.get("method_config", {}):
        if name not in method_fields:
            raise Img2ImgError(f"{flag_name(name)} does not apply to {base.method}")
    train = dataclasses.replace(base.train, **overrides.get("train", {}))
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, **model_changes),
        method_config=dataclasses.replace(base.method_config, **overrides.get("method_config", {})),
        data=dataclasses.replace(base.data, **overrides.get("data", {})),
        train=dataclasses.replace(train, speed=dataclasses.replace(train.speed, **overrides.get("speed", {}))),
    )

