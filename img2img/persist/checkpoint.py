"""Checkpoints: the config, the networks and, for training checkpoints, optimizer, scheduler
and RNG state. Written atomically and loaded with `weights_only=True` (nothing in a checkpoint
is unpickled as code). Older formats are upgraded on load.

This module needs no trainer, data pipeline or metrics: inference, the app, FID tracking,
export and pretrained conversion all load generators through `load_generators`.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import DIRECTIONS, Direction, RunConfig
from ..errors import Img2ImgError
from ..files import atomic_write, atomic_write_text
from ..methods import METHODS, run_config_from_dict
from .hub import fetch_model, is_hub_reference

# 2: ModelConfig holds only the architecture; the method name is top-level, its loss settings
#    are `method_config`, and the speed switches are `train.speed`.
# 3: `data.resize` names the resizing filter; older runs resized with cv2's area filter.
# 4: the model's pixel formats (`model.in_dtype`, `in_range`, ...); older models are 8-bit, 0..255;
#    `model.init_type` and `init_gain`, as each method initialised before.
FORMAT_VERSION = 4
# A model in safetensors (no pickle): the generators' tensors, and the config with the format version.
SAFETENSORS_WEIGHTS, SAFETENSORS_CONFIG = "model.safetensors", "config.json"
# Beside them, optionally, a whole training checkpoint (to resume): its tensors, and the rest as JSON.
TRAINING_TENSORS, TRAINING_STATE = "training_state.safetensors", "training_state.json"

# Format 1 kept these in ModelConfig and TrainConfig.
_V1_METHOD_FIELDS = ("gan_mode", "lambda_l1", "lambda_cycle", "lambda_identity", "pool_size")
_V1_SPEED_FIELDS = ("amp", "channels_last", "compile", "cuda_graphs", "fused_adam", "cudnn_benchmark")


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save({**state, "format_version": FORMAT_VERSION}, f))


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu", mmap: bool = False,
                    training_state: bool = False) -> dict[str, Any]:
    """A checkpoint in the current format, or an Img2ImgError naming the file and the problem:
    a .pt file; a safetensors model (`model.safetensors` with its `config.json`, or their folder,
    see `export_safetensors`; with a training state beside them, see `export_training_state`);
    or `hf://user/name[@revision]`, such a model on the Hub. `mmap` maps tensors instead of
    reading them (cheap when only the config is wanted). `training_state`: a Hub model's too."""
    if is_hub_reference(path):
        path = fetch_model(str(path), training_state)
    path = Path(path)
    if path.is_dir() and (path / TRAINING_STATE).is_file():
        return _upgraded(path, read_training_state(path))
    if path.is_dir() or path.suffix == ".safetensors":
        return _upgraded(path, read_safetensors(path))
    if not path.is_file():
        raise Img2ImgError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        reason = unpickling_reason(e)
        if "GLOBAL" in reason:  # an object the loader would have had to build: code, in a pickle
            raise Img2ImgError(f"{path}: refused, it holds more than tensors and settings ({reason}); img2img never "
                               "runs code from a checkpoint") from None
        raise Img2ImgError(f"{path}: not a readable img2img checkpoint ({reason})") from None
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise Img2ImgError(f"{path}: not a readable img2img checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(state, dict) or "config" not in state:
        raise Img2ImgError(f"{path}: not an img2img checkpoint (no stored config)")
    return _upgraded(path, state)


def _upgraded(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its config upgraded to the current format and checked."""
    version = state.get("format_version", 1)
    if version > FORMAT_VERSION:
        raise Img2ImgError(f"{path}: checkpoint format {version} is newer than this img2img reads "
                           f"({FORMAT_VERSION}); upgrade img2img")
    if version == 1:
        state["config"] = upgrade_config_v1(state["config"])
    if version <= 2:
        state["config"] = upgrade_config_v2(state["config"])
    if version <= 3:
        state["config"] = upgrade_config_v3(state["config"])
    state["format_version"] = FORMAT_VERSION
    try:
        run_config_from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise Img2ImgError(f"{path}: its stored config is not valid ({e})") from None
    return state


def safetensors_files(path: Path | str) -> tuple[Path, Path]:
    """(weights, config) of a safetensors model given as its folder or its .safetensors file."""
    path = Path(path)
    weights = path / SAFETENSORS_WEIGHTS if path.is_dir() else path
    return weights, weights.with_name(SAFETENSORS_CONFIG)


def export_safetensors(src: Path | str, dst: Path | str) -> Path:
    """The checkpoint's translating generator(s) as `dst/model.safetensors` (fp32, each tensor
    named `NETWORK.PARAMETER`, e.g. `G_A.model.1.weight`) and the typed config as
    `dst/config.json`: a model that loads with no pickle. Both written atomically."""
    from safetensors.torch import save

    state = generators_only(load_checkpoint(src), half=False)
    tensors = {f"{network}.{name}": tensor.contiguous() for network, weights in state["method"]["networks"].items()
               for name, tensor in weights.items()}
    weights, config = safetensors_files(Path(dst) / SAFETENSORS_WEIGHTS)
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(weights, lambda f: f.write(save(tensors, metadata={"format": "pt"})))
    atomic_write_text(config, json.dumps({"library": "img2img", "format_version": FORMAT_VERSION,
                                          "config": state["config"], "progress": state["progress"]}, indent=1) + "\n")
    return weights.parent


def read_safetensors(path: Path | str) -> dict[str, Any]:
    """A safetensors model as a checkpoint's state, read without unpickling anything."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, config = safetensors_files(path)
    missing = [p.name for p in (weights, config) if not p.is_file()]
    if missing:
        raise Img2ImgError(f"{path}: not an img2img safetensors model: no {' and no '.join(missing)}")
    try:
        meta = json.loads(config.read_text())
        stored = {"config": meta["config"], "format_version": meta["format_version"], "progress": meta.get("progress", {})}
    except (ValueError, KeyError, TypeError) as e:
        raise Img2ImgError(f"{config}: not an img2img config.json ({type(e).__name__}: {e})") from None
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise Img2ImgError(f"{weights}: not a readable safetensors file ({e})") from None
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        network, _, parameter = name.partition(".")
        networks.setdefault(network, {})[parameter] = tensor
    return {**stored, "method": {"networks": networks}}


def export_training_state(src: Path | str, dst: Path | str) -> Path:
    """The whole checkpoint (networks, optimizers, schedulers, progress, RNG) as
    `dst/training_state.safetensors` (every tensor, named by its path in the state) and
    `dst/training_state.json` (everything else, with each tensor's name in its place), so that
    a run resumes from a folder (`--resume DIR`) that holds no pickle."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(load_checkpoint(src), "", tensors)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write(dst / TRAINING_TENSORS, lambda f: f.write(save(tensors)))
    atomic_write_text(dst / TRAINING_STATE, json.dumps(structure) + "\n")
    return dst


def read_training_state(folder: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(folder / TRAINING_TENSORS)
        return _unflatten(json.loads((folder / TRAINING_STATE).read_text()), tensors)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise Img2ImgError(f"{folder}: its training state does not read ({type(e).__name__}: {str(e)[:160]})") from None


# JSON has no tuples, no non-string keys and no tensors: these markers keep them.
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def _flatten(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[name] = value.detach().cpu().contiguous()
        return {_TENSOR: name}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _flatten(v, f"{name}/{k}", tensors) for k, v in value.items()}
        return {_ITEMS: [[k, _flatten(v, f"{name}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_flatten(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]
    return value


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if _TUPLE in value:
            return tuple(_unflatten(v, tensors) for v in value[_TUPLE])
        if _ITEMS in value:
            return {k: _unflatten(v, tensors) for k, v in value[_ITEMS]}
        return {k: _unflatten(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


def unpickling_reason(error: Exception) -> str:
    """The reason in torch's weights-only refusal, without its generic preamble about the
    `weights_only` default and how to turn it off."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    after = next((i + 1 for i, line in enumerate(lines) if line.endswith("WeightsUnpickler error:")), None)
    reason = lines[after] if after is not None and after < len(lines) else next(
        (line for line in lines if "GLOBAL" in line), lines[-1] if lines else type(error).__name__)
    return reason.removeprefix("WeightsUnpickler error: ").rstrip(".")[:200]


def upgrade_config_v1(config: dict[str, Any]) -> dict[str, Any]:
    model = dict(config.get("model", {}))
    train = dict(config.get("train", {}))
    method = model.pop("method", "pix2pix")
    settings = {k: model.pop(k) for k in _V1_METHOD_FIELDS if k in model}
    known = {f for f in METHODS[method].config.__dataclass_fields__}
    speed = {k: train.pop(k) for k in _V1_SPEED_FIELDS if k in train}
    if "fused_adam" not in speed and speed.get("amp") is True:
        # Before the fast path, amp=True meant bf16 autocast on CUDA only; now it applies on
        # CPU too. None keeps the old meaning: the device default (on for CUDA, off on CPU).
        speed["amp"] = None
    train["speed"] = speed
    return {**config, "method": method, "model": model,
            "method_config": {k: v for k, v in settings.items() if k in known}, "train": train}


def upgrade_config_v2(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "data": {"resize": "area", **config.get("data", {})}}


def upgrade_config_v3(config: dict[str, Any]) -> dict[str, Any]:
    eight_bit = {"in_dtype": "uint8", "out_dtype": "uint8", "in_range": (0.0, 255.0), "out_range": (0.0, 255.0)}
    # The initialisation each method used before it was a setting.
    init = {"init_type": "xavier" if config.get("method") in ("cut", "fastcut") else "normal", "init_gain": 0.02}
    return {**config, "model": {**eight_bit, **init, **config.get("model", {})}}


def checkpoint_config(state: dict[str, Any]) -> RunConfig:
    return run_config_from_dict(state["config"])


def stored_directions(state: dict[str, Any]) -> list[Direction]:
    """The directions whose generator the checkpoint holds (a converted CycleGAN may hold one)."""
    cfg = checkpoint_config(state)
    networks = state["method"]["networks"]
    spec = METHODS[cfg.method]
    return [d for d in DIRECTIONS if d in spec.generator_keys and spec.translating_key(d, networks) in networks]


def load_generators(state: dict[str, Any], batch_statistics: str = "image",
                    source: str = "checkpoint") -> dict[Direction, nn.Module]:
    """The checkpoint's generators by direction, rebuilt from its config, in eval mode on the CPU.
    `batch_statistics`: what BatchNorm layers use (each image's own, or the running ones);
    `source` names the checkpoint in errors."""
    cfg = checkpoint_config(state)
    spec = METHODS[cfg.method]
    generators = {}
    for direction in stored_directions(state):
        networks = state["method"]["networks"]
        weights = networks[spec.translating_key(direction, networks)]
        try:
            # Its shapes first, on the meta device (no memory): a config may ask for a network far
            # larger than the weights it comes with.
            with torch.device("meta"):
                planned = spec.build_generator(cfg.model, direction, method_config=cfg.method_config).state_dict()
            shapes = {k: tuple(v.shape) for k, v in planned.items()}
            if shapes != {k: tuple(v.shape) for k, v in weights.items()}:
                wrong = next((k for k in shapes if k not in weights or tuple(weights[k].shape) != shapes[k]),
                             next(iter(set(weights) - set(shapes)), "?"))
                raise Img2ImgError(f"{source}: its {direction} weights do not fit the {cfg.model.netG} its config "
                                   f"names (ngf {cfg.model.ngf}; first difference at {wrong})")
            net = spec.build_generator(cfg.model, direction, batch_statistics, cfg.method_config)
        except ValueError as e:  # e.g. a network name this img2img does not know
            raise Img2ImgError(f"{source}: its config names no network img2img can build ({e})") from None
        try:
            net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
        except RuntimeError as e:
            problem = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
            raise Img2ImgError(f"{source}: its {direction} weights do not fit the {cfg.model.netG} its config names "
                               f"({problem[:200]})") from None
        generators[direction] = net.eval()
    return generators


def export_generators(src: Path | str, dst: Path | str, half: bool = True,
                      domain_names: tuple[str | None, str | None] = (None, None)) -> Path:
    """A small inference-only checkpoint: the config and the generators (fp16 by default), with
    no discriminators, optimizer or RNG state. Translator and the app load it as any checkpoint.
    `domain_names` (A, B), where given, replace the config's names of the domains, which the app
    shows (e.g. for a run trained without --domain-a/--domain-b)."""
    state = load_checkpoint(src)
    cfg = checkpoint_config(state)
    for field, name in zip(("domain_a", "domain_b"), domain_names):
        if name is not None:
            setattr(cfg.data, field, name)
    state["config"] = cfg.to_dict()
    save_checkpoint(dst, generators_only(state, half))
    return Path(dst)


def generators_only(state: dict[str, Any], half: bool = True) -> dict[str, Any]:
    """A checkpoint's generators (the moving average where kept: what translates) and config, with
    nothing else: what `export` writes and what a run's snapshots hold."""
    cfg = checkpoint_config(state)
    networks = state["method"]["networks"]
    spec = METHODS[cfg.method]
    generators = {
        spec.generator_keys[d]: {k: v.half() if half and v.is_floating_point() else v
                                for k, v in networks[spec.translating_key(d, networks)].items()}
        for d in stored_directions(state)
    }
    progress = state.get("progress", {})
    return {"config": state["config"], "method": {"networks": generators},
            "progress": {"step": progress.get("step", 0), "epoch": progress.get("epoch", 0)}}


def is_generators_only(state: dict[str, Any]) -> bool:
    """Whether a checkpoint holds no optimizer state (an export or a snapshot): it translates but cannot resume."""
    return "optimizers" not in state.get("method", {})


def generator_only_checkpoint(cfg: RunConfig, direction: Direction, generator: nn.Module, **extra: Any) -> dict[str, Any]:
    """The state of a checkpoint holding one generator (e.g. converted from another project)."""
    key = METHODS[cfg.method].generator_keys[direction]
    return {"config": cfg.to_dict(), "method": {"networks": {key: generator.state_dict()}}, **extra}
