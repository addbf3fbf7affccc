"""Checkpoints: config + weights + optimizer/scheduler/RNG state, written atomically and
loaded with `weights_only=True` (nothing in a checkpoint is unpickled as code)."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..errors import Img2ImgError
from ..io import atomic_write
from ..methods import METHODS

FORMAT_VERSION = 1


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **state}, f))


def link_latest(path: Path, latest: Path) -> None:
    """Point `latest` at `path` atomically: a hard link costs no second write of the file."""
    tmp = latest.with_name(f".{latest.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(path, tmp)
    os.replace(tmp, latest)


def numbered_checkpoints(folder: Path) -> list[Path]:
    """Numbered checkpoints (step_*.pt, epoch_*.pt), newest first."""
    files = [p for p in folder.glob("*.pt") if p.name.startswith(("step_", "epoch_"))]
    return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep the newest `keep` numbered checkpoints (0 keeps all); latest/best are never touched."""
    if keep > 0:
        for old in numbered_checkpoints(folder)[keep:]:
            old.unlink(missing_ok=True)


def load_newest_valid(folder: Path, warn=print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `folder` that loads, falling back past corrupt ones with a warning."""
    candidates = [folder / "latest.pt"] if (folder / "latest.pt").is_file() else []
    candidates += numbered_checkpoints(folder) if folder.is_dir() else []
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except Img2ImgError as e:
            warn(f"warning: skipping unusable checkpoint: {e}")
    return None


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise Img2ImgError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise Img2ImgError(f"{path}: not a readable img2img checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(state, dict) or "config" not in state:
        raise Img2ImgError(f"{path}: not an img2img checkpoint (no stored config)")
    return state


def export_generators(src: Path | str, dst: Path | str, half: bool = True) -> Path:
    """A small inference-only checkpoint: the config and the generators (fp16 by default), with
    no discriminators, optimizer or RNG state. Translator and the app load it as any checkpoint."""
    state = load_checkpoint(src)
    cfg = checkpoint_config(state)
    networks = state["method"]["networks"]
    keep = [key for key in METHODS[cfg.model.method].generator_keys.values() if key in networks]
    generators = {
        key: {k: v.half() if half and v.is_floating_point() else v for k, v in networks[key].items()} for key in keep
    }
    progress = state.get("progress", {})
    save_checkpoint(dst, {"config": state["config"], "method": {"networks": generators},
                          "progress": {"step": progress.get("step", 0), "epoch": progress.get("epoch", 0)}})
    return Path(dst)


def checkpoint_config(state: dict[str, Any]) -> RunConfig:
    return RunConfig.from_dict(state["config"])


def capture_rng_state() -> dict[str, Any]:
    py_version, py_internal, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": (py_version, list(py_internal), py_gauss),
        # numpy's state holds an ndarray, which weights_only loading refuses: store it as a tensor.
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
