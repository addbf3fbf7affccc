"""A run's checkpoint folder: numbered checkpoints, `latest.pt` and `best.pt` links, pruning,
and falling back past a corrupt file on resume."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from ..errors import Img2ImgError
from ..persist.checkpoint import load_checkpoint


def link_latest(path: Path, latest: Path) -> None:
    """Point `latest` at `path` atomically: a hard link costs no second write of the file."""
    tmp = latest.with_name(f".{latest.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(path, tmp)
    os.replace(tmp, latest)


def checkpoint_name(step: int, epoch: int | None = None) -> str:
    """step_0001234.pt, or epoch_0005_step_0001234.pt at the end of an epoch."""
    return f"step_{step:07d}.pt" if epoch is None else f"epoch_{epoch:04d}_step_{step:07d}.pt"


def _step_of(path: Path) -> int:
    """The training step a numbered checkpoint was written at: from its name, or, for names
    without it (epoch_0005.pt, written before format 2), from its stored progress."""
    found = re.search(r"step_(\d+)", path.name)
    if found:
        return int(found.group(1))
    try:
        return int(load_checkpoint(path, mmap=True).get("progress", {}).get("step", -1))
    except Img2ImgError:
        return -1


def numbered_checkpoints(folder: Path) -> list[Path]:
    """Numbered checkpoints (step_*.pt, epoch_*.pt), newest (highest step) first; at equal steps
    an epoch checkpoint comes first. File times play no part: copying a run keeps its order."""
    files = [p for p in folder.glob("*.pt") if p.name.startswith(("step_", "epoch_"))]
    return sorted(files, key=lambda p: (_step_of(p), p.name.startswith("epoch_"), p.name), reverse=True)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep the newest `keep` numbered checkpoints (0 keeps all); latest/best are never touched."""
    if keep > 0:
        for old in numbered_checkpoints(folder)[keep:]:
            old.unlink(missing_ok=True)


def load_newest_valid(folder: Path, warn: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `folder` that loads, falling back past corrupt ones with a warning."""
    candidates = [folder / "latest.pt"] if (folder / "latest.pt").is_file() else []
    candidates += numbered_checkpoints(folder) if folder.is_dir() else []
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except Img2ImgError as e:
            warn(f"warning: skipping unusable checkpoint: {e}")
    return None
