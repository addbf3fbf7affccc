"""Writing a run's checkpoints: numbered full checkpoints (on a background thread), latest.pt
and best.pt links, pruning, and generator-only snapshots. Every rank calls in; rank 0 writes."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import RunConfig
from ..device import Ranks
from ..errors import Img2ImgError
from ..files import atomic_write_text
from ..methods import TrainingMethod
from ..persist.checkpoint import checkpoint_config, generators_only, save_checkpoint
from . import distributed
from .background_writer import BackgroundWriter, to_host
from .checkpoint_files import link_latest, prune_checkpoints
from .footprint import Footprint
from .progress import Progress
from .rng import capture_rng_state, restore_ranks_rng


class CheckpointWriter:
    """It holds no reference to the trainer (whose DataLoader workers must be freed with it):
    the trainer hands it each state to write."""

    def __init__(self, cfg: RunConfig, ranks: Ranks, method: TrainingMethod, footprint: Footprint) -> None:
        self.cfg = cfg
        self.out = Path(cfg.train.out)
        self.folder = self.out / "checkpoints"
        self.ranks = ranks
        self.method = method
        self.footprint = footprint
        self.background = BackgroundWriter()
        self.saved_step: int | None = None  # the last step whose checkpoint is written
        self.last_asked_step = 0  # the last step a checkpoint was asked for

    def save(self, state: dict, step: int, name: str, background: bool = False, best: dict | None = None,
             snapshot: Path | None = None) -> Path:
        """Write `state` (the trainer's, at `step`) as a numbered checkpoint, point latest.pt (and, given a `best` record, best.pt) at it,
        prune old numbered ones, and write the generators alone to `snapshot` where given. Every
        rank calls it; rank 0 writes, on the background writer when `background` (the state is
        copied to host memory first)."""
        path = self.folder / name
        self.last_asked_step = step
        if not self.ranks.is_main:
            self.saved_step = step
            return path
        keep, half = self.cfg.train.keep, self.cfg.train.snapshot_half
        self.footprint.warn_if_short(self.out)

        def write(state=to_host(state) if background else state) -> None:
            save_checkpoint(path, state)
            if snapshot is not None:
                save_checkpoint(snapshot, generators_only(state, half))
            link_latest(path, self.folder / "latest.pt")
            if best is not None:
                link_latest(path, self.folder / "best.pt")
                atomic_write_text(self.out / "best.json", json.dumps(best, indent=2))
            prune_checkpoints(self.folder, keep)
            self.saved_step = step  # only once written: a failed write is redone at the end

        if background:
            self.background.submit(write, f"checkpoint {path}")
        else:
            self.background.wait()
            write()
        return path

    def save_snapshot(self, path: Path, progress: dict) -> None:
        """Write the generators alone (as `export` does) to `path`, on the background writer;
        `progress`: the step and epoch record that snapshots carry."""
        if not self.ranks.is_main:
            return
        networks, cls = self.method.networks, self.method.spec
        translating = {cls.translating_key(d, networks) for d in cls.generator_keys}
        state = to_host({"config": self.cfg.to_dict(), "progress": progress,
                         "method": {"networks": {k: networks[k].state_dict() for k in translating}}})
        half = self.cfg.train.snapshot_half
        self.background.submit(lambda: save_checkpoint(path, generators_only(state, half)), f"snapshot {path}")

    def is_current(self, step: int) -> bool:
        """Whether the checkpoint of `step` is written (waiting for a write in flight)."""
        self.background.wait()
        latest = self.folder / "latest.pt"
        return self.saved_step == step and (latest.is_file() or not self.ranks.is_main)

    def latest(self) -> Path:
        return self.folder / "latest.pt"

    def wait(self) -> None:
        self.background.wait()


def run_state(cfg: RunConfig, method: TrainingMethod, schedulers: dict, progress: Progress, ranks: Ranks) -> dict:
    """A training checkpoint: config, method (networks, optimizers, extras), schedulers,
    progress and RNG. A collective under torchrun: each rank's RNG and method extras (image
    pools) are gathered, so every rank resumes where it was."""
    own = {"rng": capture_rng_state(), "extra": method.extra_state()}
    per_rank = distributed.gather_to_main(own, ranks)
    state = {
        "config": cfg.to_dict(),
        "method": method.state_dict(),
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "progress": vars(progress).copy(),
        "rng": own["rng"],
    }
    if ranks.enabled and ranks.is_main:
        state["ranks"] = per_rank
    return state


def restore_run_state(state: dict, cfg: RunConfig, method: TrainingMethod, schedulers: dict,
                      ranks: Ranks) -> Progress:
    """Load a checkpoint of the same method and architecture into `method` and `schedulers`,
    this rank's RNG included; returns its progress. Loss weights, data and schedule settings
    may differ: the run's own config applies from here on."""
    stored = checkpoint_config(state)
    if (stored.method, stored.model) != (cfg.method, cfg.model):
        raise Img2ImgError(f"the checkpoint is a {stored.method} with {stored.model}; this run is a "
                           f"{cfg.method} with {cfg.model}")
    method.load_state_dict(state["method"])
    for k, s in schedulers.items():
        s.load_state_dict(state["schedulers"][k])
    progress = Progress(**state["progress"])
    own = state.get("ranks") or []
    if len(own) == ranks.world_size > 1:
        method.load_extra_state(own[ranks.rank]["extra"])
    restore_ranks_rng(state, ranks.rank, ranks.world_size, cfg.train.seed + progress.step * 1009)
    return progress
