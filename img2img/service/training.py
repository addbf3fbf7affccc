"""The app's Train tab without Gradio: data (folders under a root, uploaded zips), a run's settings
as the CLI takes them, runs in processes of their own, and their models in the translator.

A run's settings become a config through the same code as `img2img train`'s flags: every setting
of the config dataclasses (config.setting_specs), parsed and checked with the CLI's one-line
refusals. The run is started from that config itself (`img2img train --config`); the page shows
the equivalent command (`methods.equivalent_command`), so a run from the page can be repeated in
a terminal."""
from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    SettingSpec,
    SpeedConfig,
    TrainConfig,
    check_settings,
    setting_specs,
)
from ..data.inspect import DataReport
from ..errors import Img2ImgError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.pixel_format import PixelFormat, auto_range, canonical_dtype
from ..io.readers import read_image
from ..methods import METHODS, method_settings, model_defaults
from ..persist.checkpoint import checkpoint_config, export_generators, load_checkpoint
from ..slurm import SlurmOptions
from ..training.footprint import RunEstimate
from ..training.resume import config_for_run
from ..translate.onnx_graph import export_checkpoint
from ..translate.translator import to_pil
from .datasets import DataRoot, UploadLimits
from .run_limits import TrainingLimits, check_run, train_samples
from .runs import RunManager, RunView, RunWatch
from .slurm_runs import SlurmRunManager
from .starting_models import StartingModels

# The form's sections, in the CLI's order: (section of the overrides, title, dataclass).
SECTION_TITLES = {"data": "data", "model": "model (fixed once trained)", "method_config": "method settings",
                  "train": "training", "speed": "speed"}
PRESETS = {
    "finetune": "Fine-tune the model it starts from, on this CPU (about 5 minutes)",
    "quick": "Quick look from scratch on this CPU (about 5 minutes)",
    "paper": "The paper's schedule (days on a CPU)",
    "custom": "Custom: the length below",
}
# "Fine-tune": a run that starts from a trained model, at the model's own training size, sized
# to FINE_TUNE_SECONDS on this 2-core CPU (benchmarks/LOG.md, "Fine-tune preset"). Seconds per
# step at 256 px: `img2img bench --model M --size 256 --steps 3 --warmup 1` for each method's
# default networks (ngf 64), scaled by (ngf / 64)^2 x (size / 256)^2; but never below what a
# real `img2img train` step of the bundled model's network took (U-Net 256, ngf 32: 0.26 s with
# data loading, 2 threads), where the convolutions no longer dominate.
FINE_TUNE_SECONDS = 300
BENCH_SECONDS_PER_STEP_256 = {"pix2pix": 0.424, "colorization": 0.374, "fastcut": 3.73, "cut": 4.19,
                              "cyclegan": 5.41, "unsb": 6.89}
BUNDLED_SECONDS_PER_STEP_256 = 0.26
# "Quick look": (crop size, steps) per method, sized to train about 5 minutes on the 2-core CPU
# of benchmarks/LOG.md ("Issue 50"): `img2img bench --model M --size S --steps 5` measured
# 0.43 s/step for pix2pix at 128 px; at 64 px 1.59 s for CycleGAN, 1.15 s CUT, 0.55 s FastCUT.
# CUT's anti-aliased discriminator (issue 52) kept them inside it: 0.82 s CUT, 0.47 s FastCUT then
# on a slow night, 0.40 s and 0.24 s on a fast day (LOG.md, "Issue 52, closing measurements").
# UNSB (issue 63): 0.54 s at 64 px (median of 10; its steps cost more at later time steps).
QUICK = {"pix2pix": (128, 600), "cyclegan": (64, 180), "cut": (64, 250), "fastcut": (64, 400),
         "colorization": (128, 600), "unsb": (64, 400)}
# The papers resize to 286 before a random 256 crop; the quick look keeps that ratio.
LOAD_RATIO = 286 / 256
# Settings that name a folder or file on the server: from the page, named inside the data root.
PATH_SETTINGS = (("data", "val_dir"), ("train", "fid_val"), ("train", "fid_weights"))
THUMBNAIL_SIDE = 192


@dataclass(frozen=True)
class FormSetting:
    """One field of the "all settings" form: a config setting, keyed "section.name"."""

    section: str
    spec: SettingSpec
    default_text: str
    used_by: str = ""

    @property
    def key(self) -> str:
        return f"{self.section}.{self.spec.name}"


def form_settings() -> list[FormSetting]:
    """Every command-line setting of a run, as `img2img train --help` lists them: a setting added
    to a config dataclass appears here with no other code."""
    merged, method_defaults, used_by = method_settings()
    sections = [("data", DataConfig, {}), ("model", ModelConfig, model_defaults()),
                ("method_config", merged, method_defaults), ("train", TrainConfig, {}), ("speed", SpeedConfig, {})]
    out = []
    for section, cls, defaults in sections:
        for spec in setting_specs(cls, defaults):
            if (section, spec.name) == ("train", "init_from"):  # the page's "Start from": offered models only
                continue
            default = spec.default
            text = ("on" if default else "off") if isinstance(default, bool) else ("" if default is None else str(default))
            out.append(FormSetting(section, spec, text, used_by.get(spec.name, "")))
    return out


@dataclass
class RunPlan:
    """A run about to start: its config, its name under the runs folder, and what it will take."""

    cfg: RunConfig
    name: str
    estimate: RunEstimate

    def command(self, runs: RunManager) -> str:
        """The command that makes the same run in a terminal (`img2img train`, or `submit` where
        runs are Slurm jobs)."""
        return runs.command_for(dataclasses.replace(
            self.cfg, train=dataclasses.replace(self.cfg.train, out=str(runs.runs_dir / self.name))))


class TrainingService:
    """Data under `data_root`, runs under `runs_dir` (at most `max_runs` at once)."""

    def __init__(self, data_root: Path | str, runs_dir: Path | str, max_runs: int = 1,
                 limits: Limits = DEFAULT_LIMITS, upload_limits: UploadLimits = UploadLimits(),
                 train_command: tuple[str, ...] | None = None, run_limits: TrainingLimits = TrainingLimits(),
                 admins: tuple[str, ...] = (), models_dir: Path | str | None = None,
                 slurm: SlurmOptions | None = None) -> None:
        """`run_limits`: what one run from the page may take; `admins`: logins that may stop,
        resume, delete and use anyone's runs (others only their own); `models_dir`: the app's models,
        which a run may start from (as may its owner's runs); `slurm`: runs are Slurm jobs."""
        self.data = DataRoot(data_root, limits, upload_limits)
        self.runs = SlurmRunManager(runs_dir, slurm, run_limits, admins) if slurm is not None else RunManager(
            runs_dir, max_runs, *([train_command] if train_command else []), run_limits=run_limits, admins=admins)
        self.run_limits = run_limits
        self.starting = StartingModels(models_dir, self.runs)
        self.settings = {s.key: s for s in form_settings()}

    # ---- data ---------------------------------------------------------------------------------
    def upload(self, path: str | Path, name: str | None = None) -> tuple[str, DataReport]:
        return self.data.unpack(path, name)

    def inspect(self, name: str) -> DataReport:
        return self.data.inspect(name)

    def describe(self, report: DataReport) -> str:
        """The report's words, its folder named inside the data root (no server path)."""
        return report.text().replace(str(self.data.root) + "/", "")

    def thumbnails(self, report: DataReport, folder: Path) -> list[tuple[Path, str]]:
        """PNG previews of the report's samples (a pair side by side), with their file names."""
        return contact_sheets(report, folder, self.data.limits)

    # ---- a run's settings ------------------------------------------------------------------------
    def plan(self, data: str, method: str, preset: str = "quick", size: float | None = None,
             length: float | None = None, unit: str = "steps", settings: dict[str, str] | None = None,
             start_from: str = "", user: str | None = None) -> RunPlan:
        """The run these choices make, checked as the CLI checks them (one-line refusals).
        `size` and `length` as a page's number fields give them: blank or 0 is the preset's.
        `settings`: "section.name" -> the flag's text, for the settings given in "all settings"
        (they win over the preset and the size and length above them). `start_from`: a key of
        `StartingModels.offered` (blank: from scratch)."""
        size, length = int(size or 0) or None, int(length or 0) or None
        if method not in METHODS:
            raise METHODS.unknown(method)
        if preset not in PRESETS:
            raise Img2ImgError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
        root = self.data.resolve(data)
        settings = dict(settings or {})
        start_from = (settings.pop("train.init_from", None) or start_from or "").strip()
        starting = self.starting.path(start_from, method, user) if start_from else None
        if preset == "finetune" and starting is None:
            raise Img2ImgError("the fine-tune preset needs a trained model to start from; choose one, or another preset")
        overrides: dict[str, dict] = {}
        for section, name, value in preset_overrides(method, preset, starting):
            overrides.setdefault(section, {})[name] = value
        if starting is not None:
            overrides.setdefault("train", {})["init_from"] = str(starting)
        if size:
            overrides.setdefault("data", {}).update(size=int(size), load_size=_load_size(int(size)))
        if length:
            if unit == "epochs":
                epochs = int(length)
                overrides.setdefault("train", {}).update(epochs=(epochs + 1) // 2, epochs_decay=epochs // 2,
                                                         max_steps=None)
            elif unit == "steps":
                overrides.setdefault("train", {})["max_steps"] = int(length)
            else:
                raise Img2ImgError(f"length in {unit!r}: give steps or epochs")
        for key, text in settings.items():
            if text is None or not str(text).strip():
                continue
            setting = self.settings.get(key)
            if setting is None:
                raise Img2ImgError(f"unknown setting {key}")
            overrides.setdefault(setting.section, {})[setting.spec.name] = setting.spec.value_of(str(text))
        for section, setting in PATH_SETTINGS:  # server paths: named inside the data root, like the data
            value = overrides.get(section, {}).get(setting)
            if value:
                overrides[section][setting] = str(self.data.resolve(value))
        name = f"{root.name}_{method}"
        try:
            start = config_for_run(overrides, method=method, data=str(root), out=str(self.runs.runs_dir / name))
        except ValueError as e:
            raise Img2ImgError(str(e)) from None
        check_settings(start.cfg)
        samples = train_samples(root, METHODS[method].dataset_kind)
        estimate = check_run(start.cfg, samples, self.run_limits, self.runs.runs_dir)
        if preset == "custom":  # a short run still logs, draws and saves along the way
            for setting, value in custom_intervals(estimate.total_steps).items():
                if f"train.{setting}" not in settings:
                    setattr(start.cfg.train, setting, value)
        return RunPlan(start.cfg, name, estimate)


    def start(self, plan: RunPlan, user: str | None = None) -> str:
        return self.runs.submit(plan.cfg, plan.name, user)

    # ---- runs -----------------------------------------------------------------------------------
    def list_runs(self) -> list[RunView]:
        return self.runs.runs()

    def default_run(self, remembered: str | None = None) -> str | None:
        """The run a page opens on: the one this browser watched last, else one that trains, else
        the newest."""
        views = self.list_runs()
        names = [v.name for v in views]
        if remembered in names:
            return remembered
        return next((v.name for v in views if v.state in ("running", "stopping")), names[0] if names else None)

    def watch(self, name: str) -> RunWatch:
        return self.runs.watch(name)

    def stop(self, name: str, user: str | None = None) -> None:
        self.runs.stop(name, user)

    def resume(self, name: str, user: str | None = None) -> None:
        self.runs.resume(name, user)

    def delete(self, name: str, user: str | None = None) -> None:
        self.runs.delete(name, user)

    def model_of(self, name: str, user: str | None = None) -> tuple[Path, tuple[tuple[str, str], ...]]:
        """The run's checkpoint to translate with (best.pt, else latest.pt) and the card's lines
        about the run: its state and its newest metrics. Its owner's (or an admin's) only."""
        self.runs.check_owner(name, user, "use")
        watch = self.runs.watch(name)
        if watch.view.checkpoint is None:
            raise Img2ImgError(f"{name}: has no checkpoint yet (one is written at the end, on Stop, and every "
                               "--save-every steps)")
        return watch.view.checkpoint, model_facts(watch)

    def export(self, name: str, kind: str, folder: Path, user: str | None = None) -> Path:
        """The run's model for download: `pt` (the generators, fp32, as `img2img export`) or `onnx`
        (one graph per direction, zipped when there are two)."""
        checkpoint, _ = self.model_of(name, user)
        if kind == "pt":
            return export_generators(checkpoint, folder / f"{name}.pt", half=False)
        if kind == "onnx":
            outputs = export_checkpoint(checkpoint, folder / f"{name}.onnx", None)
            if len(outputs) == 1:
                return outputs[0]
            bundle = folder / f"{name}_onnx.zip"
            with zipfile.ZipFile(bundle, "w") as archive:
                for out in outputs:
                    archive.write(out, out.name)
            return bundle
        raise Img2ImgError(f"export as {kind!r}: pt or onnx")


def model_facts(watch: RunWatch) -> tuple[tuple[str, str], ...]:
    """The model card's lines about a run: its state and checkpoint, its newest losses, its best
    validation scores."""
    view = watch.view
    served = load_checkpoint(view.checkpoint, mmap=True).get("progress", {}).get("step", "?")
    facts = [("training run", f"{view.name} ({view.state}); the translator serves {view.checkpoint.name}, "
                              f"from step {served}")]
    if watch.losses:
        last_step = watch.losses[-1]["step"]
        losses = ", ".join(f"{r['loss']} {r['value']:.3f}" for r in watch.losses if r["step"] == last_step)
        facts.append((f"losses at step {last_step}", losses))
    for metric in ("fid", "kid"):
        values = [r for r in watch.evaluations if r["metric"] == metric]
        if values:
            best = min(values, key=lambda r: r["value"])
            facts.append((f"val {metric.upper()}", f"{best['value']:.4g} at step {best['step']} (best of "
                                                   f"{len(values)})"))
    return tuple(facts)


def contact_sheets(report: DataReport, folder: Path, limits: Limits) -> list[tuple[Path, str]]:
    """PNG previews of the report's samples (a pair side by side), with their file names."""
    out = []
    for i, sample in enumerate(report.samples):
        images = []
        for path in sample:
            try:
                image = _preview(read_image(path, limits=limits).array)
            except Img2ImgError:
                continue
            image.thumbnail((THUMBNAIL_SIDE * (2 if len(sample) == 1 and report.kind == "paired" else 1),
                             THUMBNAIL_SIDE))
            images.append(image)
        if not images:
            continue
        sheet = Image.new("RGB", (sum(im.width for im in images) + 4 * (len(images) - 1),
                                  max(im.height for im in images)), "white")
        x = 0
        for im in images:
            sheet.paste(im.convert("RGB"), (x, 0))
            x += im.width + 4
        target = folder / f"sample_{i}.png"
        sheet.save(target)
        out.append((target, " | ".join(p.name for p in sample)))
    return out


def preset_overrides(method: str, preset: str, starting: Path | None = None) -> list[tuple[str, str, object]]:
    """(section, setting, value) of a preset; the fine-tune preset sized for `starting`."""
    if preset in ("quick", "finetune"):
        size, steps = fine_tune_length(method, starting) if preset == "finetune" else QUICK[method]
        if preset == "quick" and starting is not None:  # a trained model fixes its network's size
            size = fine_tune_length(method, starting)[0]
        # A checkpoint and val figures at each sample grid: what "Use in the translator" serves is
        # what was shown.
        return [("data", "size", size), ("data", "load_size", _load_size(size)), ("train", "max_steps", steps),
                ("train", "fid_every", 0), ("train", "log_every", 10), ("train", "sample_every", steps // 6),
                ("train", "save_every", steps // 6), ("train", "val_every", steps // 6)]
    if preset == "paper":
        values = [("data", "size", 256), ("data", "load_size", 286)]
        if "paper" in METHODS[method].recipes:
            values.append(("method_config", "recipe", "paper"))
        return values
    return []


def default_size(starting: StartingModels, method: str, preset: str, start_from: str = "",
                 user: str | None = None) -> int:
    """The training size that Size 0 means for these choices."""
    if preset == "quick":
        return QUICK[method][0]
    if preset == "finetune" and start_from:
        return fine_tune_length(method, starting.path(start_from, method, user))[0]
    return max(DataConfig().crop_size)


def custom_intervals(total_steps: int) -> dict[str, int]:
    """Log, sample-grid and validation intervals that show a run of `total_steps` along the way:
    about 20 log rows and 6 grids, at most the CLI's defaults apart. (Checkpoints keep
    --save-every: a full one each grid would cost a short run more than its training.)"""
    grid = max(1, min(500, total_steps // 6))
    return {"log_every": max(1, min(50, total_steps // 20)), "sample_every": grid, "val_every": grid}


def fine_tune_length(method: str, checkpoint: Path) -> tuple[int, int]:
    """(size, steps) of the fine-tune preset from `checkpoint`: the model's own training size, and
    the steps of about FINE_TUNE_SECONDS on this CPU (see BENCH_SECONDS_PER_STEP_256): 1,150 for
    the bundled maps model."""
    cfg = checkpoint_config(load_checkpoint(checkpoint, mmap=True))
    size = max(cfg.data.crop_size)
    seconds = max(BENCH_SECONDS_PER_STEP_256[method] * (cfg.model.ngf / 64) ** 2,
                  BUNDLED_SECONDS_PER_STEP_256) * (size / 256) ** 2
    return size, max(10, int(FINE_TUNE_SECONDS / seconds) // 10 * 10)


def _load_size(size: int) -> int:
    return round(size * LOAD_RATIO)


def _preview(pixels: np.ndarray) -> Image.Image:
    """8-bit pictures as they are; other pixels windowed by their own 0.5/99.5 percentiles."""
    if pixels.dtype == np.uint8:
        return to_pil(pixels, PixelFormat(pixels.shape[2]))
    lo, hi = auto_range([pixels])
    return to_pil(pixels, PixelFormat(pixels.shape[2], canonical_dtype(pixels.dtype), lo, hi))
