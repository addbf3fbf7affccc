"""What one run from the page may take, on a server that also serves everyone else: bounds on
its settings, on the memory and disk its config will need (estimated before it starts), on the
runs folder, and on the queue. The CLI keeps its own defaults: these apply to the app's runs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..data.layout import split_or_root
from ..errors import Img2ImgError
from ..io.limits import limit
from ..io.readers import list_images
from ..training.footprint import RunEstimate, estimate_run


@dataclass(frozen=True)
class TrainingLimits:
    """Each field is a `--max-*` flag of `img2img app` (flags.add_training_limit_flags)."""

    max_num_workers: int = limit(4, "data-loading processes of one run")
    max_ngf: int = limit(256, "generator width (--ngf) of one run")
    max_ndf: int = limit(256, "discriminator width (--ndf) of one run")
    max_batch_size: int = limit(64, "images per step of one run")
    max_train_size: int = limit(1024, "pixels on a side of one run's training crop")
    max_train_steps: int = limit(2_000_000, "steps of one run")
    max_run_memory_mb: int = limit(8192, "MB of memory one run's step may need, as estimated from its config")
    max_run_process_mb: int = limit(12_288, "MB of memory one run's process may take (a resource limit on its "
                                     "data, which torch needs about 1,300 MB of to start); past it the run fails "
                                     "with 'out of memory'")
    max_run_disk_mb: int = limit(20_000, "MB of checkpoints and snapshots one run may write, as estimated")
    max_runs_disk: int = limit(100_000, "MB the runs folder may hold, a new run's estimate included; a running run "
                               "that reaches it stops with a checkpoint")
    max_queued_runs: int = limit(20, "runs waiting to start, in all")
    max_queued_runs_per_user: int = limit(5, "runs waiting to start, per login")


# Settings bounded directly: (section, field, the limit's field, the flag that sets it).
SETTING_BOUNDS = (("data", "num_workers", "max_num_workers"), ("model", "ngf", "max_ngf"),
                  ("model", "ndf", "max_ndf"), ("data", "batch_size", "max_batch_size"))


def check_run(cfg: RunConfig, samples: int, limits: TrainingLimits, runs_dir: Path) -> RunEstimate:
    """The run's estimate, or an Img2ImgError naming the setting and the server's bound."""
    for section, name, bound in SETTING_BOUNDS:
        value = getattr(getattr(cfg, section), name)
        allowed = getattr(limits, bound)
        if value > allowed:
            raise Img2ImgError(f"--{name.replace('_', '-')} {value}: a run from this server's page may use at most "
                               f"{allowed} (--{bound.replace('_', '-')})")
    width, height = cfg.data.crop_size
    if max(width, height) > limits.max_train_size:
        raise Img2ImgError(f"--size {width}x{height}: a run from this server's page trains at most "
                           f"{limits.max_train_size} px on a side (--max-train-size)")
    estimate = estimate_run(cfg, samples)
    mb = 1e6
    refusals = (
        (estimate.total_steps > limits.max_train_steps,
         f"{estimate.total_steps:,} steps, more than the {limits.max_train_steps:,} this server allows (--max-train-steps)"),
        (estimate.memory_bytes > limits.max_run_memory_mb * mb,
         f"about {estimate.memory_bytes / mb:,.0f} MB of memory at its peak, more than the {limits.max_run_memory_mb:,} "
         "MB a run may take here (--max-run-memory-mb); use a smaller --ngf, --batch-size or --size"),
        (estimate.disk_bytes > limits.max_run_disk_mb * mb,
         f"about {estimate.disk_bytes / mb:,.0f} MB of checkpoints and snapshots, more than the "
         f"{limits.max_run_disk_mb:,} MB a run may write here (--max-run-disk-mb); use --keep, --snapshot-every 0"),
    )
    for refused, why in refusals:
        if refused:
            raise Img2ImgError(f"this run would need {why}")
    used = folder_bytes(runs_dir)
    if used + estimate.disk_bytes > limits.max_runs_disk * mb:
        raise Img2ImgError(f"the runs folder holds {used / mb:,.0f} MB and this run may write "
                           f"{estimate.disk_bytes / mb:,.0f} MB more, past the {limits.max_runs_disk:,} MB this server "
                           "allows (--max-runs-disk); delete finished runs first")
    return estimate


def runs_past_disk_budget(runs_dir: Path, running: list[str], limits: TrainingLimits) -> list[tuple[str, str]]:
    """(run, why) for each running run to stop: the runs folder has reached --max-runs-disk, less
    room for the checkpoint that stopping writes (beside the run's largest one, until renamed)."""
    used, budget = folder_bytes(runs_dir), limits.max_runs_disk * 1e6
    stops = []
    for name in running:
        room = 2 * max((p.stat().st_size for p in (runs_dir / name / "checkpoints").glob("*.pt")), default=0)
        if used + room >= budget:
            stops.append((name, f"the runs folder holds {used / 1e6:,.0f} MB, at this server's disk budget of "
                                f"{budget / 1e6:,.0f} MB (--max-runs-disk); delete finished runs, then resume it"))
    return stops


def folder_bytes(folder: Path) -> int:
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(path, name)).st_size
            except OSError:
                pass
    return total


def train_samples(root: Path, kind: str) -> int:
    """About how many samples an epoch of the folder's train split has, from its file listing."""
    if kind == "unpaired":
        return max((len(list_images(root / name)) for name in ("trainA", "trainB") if (root / name).is_dir()),
                   default=0)
    split = split_or_root(root)
    return len(list_images(split / "A")) if (split / "A").is_dir() else len(list_images(split))
