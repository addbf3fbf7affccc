"""End-of-epoch evaluation: FID/KID (and, for paired data, val L1 and PSNR) on the validation
split every `fid_every` epochs, the best epoch so far, and `--lr-policy plateau`, which steps on
what the evaluation measured."""
from __future__ import annotations

import time
from pathlib import Path

from torch.utils.data import Dataset

from ..config import RunConfig
from ..data.builders import build_val_dataset
from ..device import Ranks
from ..methods import TrainingMethod
from . import distributed
from .fid_tracker import FIDTracker, mean_fid, plot_fid
from .progress import Progress
from .run_folder import MetricsLog
from .schedule import Schedule, plateau_metric

# --fid-every left unset: evaluate FID about this often (in steps, rounded to whole epochs).
AUTO_FID_STEPS = 1000
# A run ends with FID/KID only when its validation split holds this many images: on fewer they
# measure the sample more than the model.
MIN_FID_IMAGES = 50


class Evaluation:
    """Says what it measured in the log, from rank 0 only."""

    def __init__(self, cfg: RunConfig, ranks: Ranks, method: TrainingMethod, val_set: Dataset | None,
                 schedule: Schedule, schedulers: dict) -> None:
        self.cfg = cfg
        self.out = Path(cfg.train.out)
        self.ranks = ranks
        self.method = method
        self.val_set = val_set
        self.schedulers = schedulers
        self.every = self._interval(schedule.steps_per_epoch)
        self.total_steps = schedule.total_steps
        self.fid: FIDTracker | None = None
        self._plateau_watching: str | None = None  # what --lr-policy plateau watches, once said

    def info(self, msg: str) -> None:
        distributed.info(self.ranks, msg)

    def warning(self, msg: str) -> None:
        distributed.warning(self.ranks, msg)

    def _interval(self, steps_per_epoch: int) -> int:
        """Epochs between FID evaluations: --fid-every, or, left unset, the fewest epochs that
        hold AUTO_FID_STEPS steps, so FID costs little beside training (0 = never)."""
        if self.cfg.train.fid_every is not None:
            return self.cfg.train.fid_every
        return max(1, -(-AUTO_FID_STEPS // steps_per_epoch))

    def end_of_epoch(self, p: Progress, metrics: MetricsLog | None) -> dict | None:
        """Evaluate if this epoch is due (FID on rank 0, the others wait), step a plateau policy,
        and return the best-epoch record when this epoch is the best so far (else None)."""
        if not (self.every and p.epoch % self.every == 0):
            return None
        results = self._evaluate(p, metrics) if self.ranks.is_main else None
        distributed.barrier(self.ranks)
        if self.cfg.train.lr_policy == "plateau":
            self._step_plateau(results)
        has_fid = results is not None and any(k.startswith(("fid_AtoB", "fid_BtoA")) for k in results)
        if not has_fid or (p.best_fid is not None and mean_fid(results) >= p.best_fid):
            return None
        p.best_fid, p.best_epoch = mean_fid(results), p.epoch
        return {"epoch": p.epoch, "step": p.step, "fid": p.best_fid, **results}

    def pixels(self, p: Progress, metrics: MetricsLog | None) -> None:
        """A row of val L1, PSNR and SSIM (paired runs; --val-every and the sample grids of presets)."""
        if p.step >= self.total_steps:  # the run's last step: `at_end` measures it
            return
        if self.ranks.is_main and self.method.spec.dataset_kind == "paired" and self._ready():
            self._write(p, metrics, self.fid.native(), time.perf_counter())
        distributed.barrier(self.ranks)

    def at_end(self, p: Progress, metrics: MetricsLog | None) -> None:
        """Every run ends with its validation figures: L1, PSNR and SSIM (paired), and FID/KID
        where the split holds MIN_FID_IMAGES images (else a note saying why not)."""
        if self.ranks.is_main and self._ready() and (metrics is None or metrics.last_eval_step != p.step):
            started = time.perf_counter()
            images = len(self.fid.inputs_b)
            if images >= MIN_FID_IMAGES:
                results = self.fid.evaluate() or {}
            else:
                results = {**self.fid.native(), "fid_note": f"not measured: {images} validation images, fewer than "
                                                            f"the {MIN_FID_IMAGES} FID needs to mean something"}
            self._write(p, metrics, results, started)
        distributed.barrier(self.ranks)

    def _ready(self) -> bool:
        if self.fid is None:
            self.fid = self._tracker()
        return self.fid is not None

    def _write(self, p: Progress, metrics: MetricsLog | None, results: dict, started: float) -> None:
        if not results or metrics is None:
            return
        results["seconds_eval"] = round(time.perf_counter() - started, 2)
        metrics.write("eval", p.step, p.epoch + (p.position > 0), results)  # within an epoch: its number
        self.info(f"step {p.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()
                                                 if isinstance(v, float) and k.startswith(("fid_", "kid_", "val_"))))

    def _tracker(self) -> FIDTracker | None:
        cfg = self.cfg
        val = (build_val_dataset(cfg, self.method.spec.dataset_kind, cfg.train.fid_val) if cfg.train.fid_val
               else self.val_set)
        asked = cfg.train.fid_every is not None
        if val is None:
            (self.warning if asked else self.info)(
                f"{'warning: ' if asked else ''}no validation split in {cfg.data.root} (val/, test/, testA+testB): "
                "FID is skipped; point --fid-val at one")
            return None
        return FIDTracker(self.out, val, self.method, cfg.train.fid_weights, self.method.device, required=asked)

    def _evaluate(self, p: Progress, metrics: MetricsLog) -> dict[str, float | str] | None:
        started = time.perf_counter()
        if self.fid is None:
            self.fid = self._tracker()
        results = self.fid.evaluate() if self.fid is not None else None
        if results is None:
            return None
        results["seconds_fid"] = round(time.perf_counter() - started, 2)
        metrics.write("eval", p.step, p.epoch, results)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in results.items()
                          if k.startswith(("fid_AtoB", "fid_BtoA", "kid_", "val_")))
        if "inception_weights" in results:
            plot_fid(metrics.rows, self.out / "fid.png")
            shown += f" ({results['inception_weights']}; {results['seconds_fid']:.1f} s)"
        self.info(f"epoch {p.epoch}: {shown}")
        return results

    def _step_plateau(self, results: dict | None) -> None:
        """--lr-policy plateau: every rank steps with rank 0's metric, so all keep one lr."""
        watched = plateau_metric(results) if self.ranks.is_main else None
        if self.ranks.enabled:
            watched = distributed.broadcast_from_main(watched)
        if watched is None:
            return
        name, value = watched
        if self._plateau_watching != name:
            self._plateau_watching = name
            self.info(f"--lr-policy plateau watches the {name}")
        for s in self.schedulers.values():
            s.step(value)
