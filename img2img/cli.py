"""Command line: a thin layer that builds typed configs and calls the library."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import Img2ImgError
from .models.generators import GENERATOR_BUILDERS

# CLI flag destinations for each config section; flags left unset keep the config's value.
MODEL_FLAGS = ("netG", "netD", "ngf", "ndf", "n_layers_d", "norm", "dropout", "gan_mode", "lambda_l1",
               "lambda_cycle", "lambda_identity", "pool_size")
DATA_FLAGS = ("direction", "load_size", "size", "flip", "serial_batches", "batch_size", "num_workers", "val_dir")
TRAIN_FLAGS = ("epochs", "epochs_decay", "max_steps", "lr", "device", "amp", "channels_last", "compile", "cuda_graphs",
               "fused_adam", "cudnn_benchmark", "sync_bn", "seed", "log_every",
               "sample_every", "save_every", "keep", "max_bad_steps", "log_grad_norm", "fid_every", "fid_val",
               "fid_weights")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train pix2pix (paired) or CycleGAN (unpaired)")
    p.add_argument("--model", choices=["pix2pix", "cyclegan"], help="method (default pix2pix)")
    p.add_argument("--data", help="dataset folder: DIR/train[/A,/B] for pix2pix, DIR/trainA + DIR/trainB for cyclegan")
    p.add_argument("--out", help="run folder (default runs/<data name>_<model>)")
    p.add_argument("--resume", help="checkpoint to continue from, or 'auto' for OUT/checkpoints/latest.pt")
    g = p.add_argument_group("data")
    g.add_argument("--direction", choices=["AtoB", "BtoA"])
    g.add_argument("--size", type=int, help="crop size (default 256)")
    g.add_argument("--load-size", type=int, help="resize before cropping (default 286)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--no-flip", dest="flip", action="store_const", const=False, help="no horizontal flips")
    g.add_argument("--serial-batches", action="store_const", const=True, help="in-order data (unpaired: A[i] with B[i])")
    g.add_argument("--num-workers", type=int, help="data loading processes (default 2)")
    g.add_argument("--val-dir", help="validation folder (default DIR/val or DIR/test)")
    g = p.add_argument_group("model")
    g.add_argument("--netG", choices=list(GENERATOR_BUILDERS),
                   help="unet_N needs sizes that are multiples of N; resnet_* multiples of 4")
    g.add_argument("--netD", choices=["patch", "pixel"])
    g.add_argument("--ngf", type=int)
    g.add_argument("--ndf", type=int)
    g.add_argument("--n-layers-d", type=int, help="PatchGAN depth (3 = 70x70)")
    g.add_argument("--norm", choices=["batch", "instance", "none"])
    g.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--gan-mode", choices=["vanilla", "lsgan", "hinge"])
    g.add_argument("--lambda-l1", type=float, help="pix2pix L1 weight (default 100)")
    g.add_argument("--lambda-cycle", type=float, help="CycleGAN cycle weight (default 10)")
    g.add_argument("--lambda-identity", type=float, help="CycleGAN identity weight, times lambda-cycle (default 0.5)")
    g.add_argument("--pool-size", type=int, help="CycleGAN image pool size (default 50, 0 = off)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="epochs at constant lr (default 100)")
    g.add_argument("--epochs-decay", type=int, help="epochs of linear decay to 0 (default 100)")
    g.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    g.add_argument("--lr", type=float)
    g.add_argument("--device", help="auto, cpu or cuda (default auto)")
    g.add_argument("--seed", type=int)
    g = p.add_argument_group("speed (defaults: the fastest measured for the device; see benchmarks/RESULTS.md)")
    add_speed_flags(g)
    g.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=None,
                   help="let cuDNN pick the fastest convolution algorithms (default on)")
    g.add_argument("--sync-bn", action="store_const", const=True,
                   help="under torchrun: BatchNorm statistics over all ranks' batches (CUDA only)")
    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--log-every", type=int,
                   help="steps between metrics.csv rows; losses are read from the device only then (default 50)")
    g.add_argument("--sample-every", type=int, help="steps between sample grids (default 500)")
    g.add_argument("--save-every", type=int, help="steps between numbered checkpoints (default 1000)")
    g.add_argument("--keep", type=int, help="numbered checkpoints to keep, newest first (default 0 = all)")
    g.add_argument("--max-bad-steps", type=int, help="stop after this many non-finite steps in a row (default 20)")
    g.add_argument("--log-grad-norm", action="store_const", const=True, help="log gradient norms to metrics")
    g.add_argument("--fid-every", type=int, help="FID/KID on the validation split every N epochs; keeps best.pt")
    g.add_argument("--fid-val", help="folder to compute FID on instead of the validation split")
    g.add_argument("--fid-weights", help="Inception weights for FID (see `img2img fid --help`)")
    p.set_defaults(run=run_train)


def add_speed_flags(g) -> None:
    """Fast-path switches shared by `train` and `bench`; unset ones keep the device default."""
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for CUDA, off on CPU)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on for CUDA, off on CPU)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the networks (default off)")
    g.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="compile with CUDA graphs (mode reduce-overhead; CUDA only, default off)")
    g.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=None,
                   help="fused Adam kernel, which skips non-finite steps without a host sync (default on)")


def _given(args, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def default_out(data: str, method: str) -> str:
    return str(Path("runs") / f"{Path(data).resolve().name}_{method}")


def train_config(args) -> tuple[RunConfig, dict | None]:
    """The run's config and the checkpoint state to resume from, if any.

    A resumed run starts from the checkpoint's config; flags given now override it.
    """
    from .training import checkpoint_config, load_checkpoint, load_newest_valid

    resume_path, state = None, None
    if args.resume == "auto":
        if not (args.out or args.data):
            raise Img2ImgError("--resume auto needs --out (or --data, to find the default run folder)")
        out = args.out or default_out(args.data, args.model or "pix2pix")
        found = load_newest_valid(Path(out) / "checkpoints", warn=lambda msg: print(msg, file=sys.stderr))
        if found is None:
            print(f"no usable checkpoint in {out}/checkpoints: starting a new run")
        else:
            resume_path, state = found
    elif args.resume:
        resume_path = Path(args.resume)
        state = load_checkpoint(resume_path)
    if state is None:
        method = args.model or "pix2pix"
        base = RunConfig(model=ModelConfig.for_method(method), data=DataConfig(), train=TrainConfig())
    else:
        base = checkpoint_config(state)
        if args.model and args.model != base.model.method:
            raise Img2ImgError(f"{resume_path}: is a {base.model.method} checkpoint, not {args.model}")
    cfg = RunConfig(
        model=dataclasses.replace(base.model, **_given(args, MODEL_FLAGS)),
        data=dataclasses.replace(base.data, **_given(args, DATA_FLAGS), **({"root": args.data} if args.data else {})),
        train=dataclasses.replace(base.train, **_given(args, TRAIN_FLAGS), **({"out": args.out} if args.out else {})),
    )
    if not cfg.data.root:
        raise Img2ImgError("--data is required: the dataset folder to train on")
    if not cfg.train.out:
        cfg.train.out = default_out(cfg.data.root, cfg.model.method)
    if state is not None:
        state["path"] = str(resume_path)
    return cfg, state


def run_train(args) -> int:
    from .training import Trainer

    from .training.distributed import teardown

    cfg, state = train_config(args)
    try:
        trainer = Trainer(cfg)
        if state is not None:
            trainer.load_state_dict(state)
            trainer.log(f"resumed from {state['path']} at step {trainer.progress.step} "
                        f"(epoch {trainer.progress.epoch + 1})")
        ranks = trainer.ranks
        where = f"{ranks.world_size} ranks on {trainer.device.type}" if ranks.enabled else str(trainer.device)
        trainer.log(f"training {cfg.model.method} on {cfg.data.root} ({len(trainer.train_set)} samples/epoch) "
                    f"on {where} ({trainer.speed.describe()}); outputs in {cfg.train.out}")
        trainer.fit()
    finally:
        teardown()
    return 0


def add_translate_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate an image or a folder of images with a trained model")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by `img2img train`")
    p.add_argument("input", help="an image file or a folder (walked recursively)")
    p.add_argument("output", help="output folder (mirrors INPUT's structure) or file")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--format", default="png", choices=["png", "jpg", "same"])
    p.add_argument("--size", type=int, help="resize to SIZE x SIZE for the network, then back")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images (default 40 MP)")
    p.add_argument("--num-workers", type=int, default=2, help="image decoding processes (default 2)")
    p.add_argument("--batch-norm", default="image", choices=["image", "running"],
                   help="BatchNorm statistics: each image's own (default, as canonical pix2pix) or the running ones")
    p.set_defaults(run=run_translate)


def run_translate(args) -> int:
    import torch

    from .batch import translate_files
    from .inference import Translator

    # Under torchrun each process takes its share of the files (and its own GPU).
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = args.device
    if world_size > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    translator = Translator.from_checkpoint(args.checkpoint, device=device, batch_norm=args.batch_norm)
    start = time.perf_counter()
    report = translate_files(
        translator, args.input, args.output, direction=args.direction, batch_size=args.batch_size,
        overwrite=args.overwrite, fmt=args.format, size=args.size, max_pixels=args.max_pixels,
        num_workers=args.num_workers, shard=(rank, world_size),
    )
    elapsed = time.perf_counter() - start
    prefix = f"[rank {rank}/{world_size}] " if world_size > 1 else ""
    print(prefix + report.summary().replace("\n", "\n" + prefix))
    if report.converted:
        print(f"{prefix}{report.converted / elapsed:.2f} images/s on {translator.device}")
    return 1 if report.failures else 0


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time full training steps on random inputs (papers' default models)")
    p.add_argument("--model", choices=["pix2pix", "cyclegan"], default="pix2pix")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, cuDNN autotuning)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    add_speed_flags(p)
    p.add_argument("--json", action="store_true", help="end with one line of JSON with every figure and setting")
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    import json

    from .bench import BenchSettings, run_benchmark

    settings = BenchSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchSettings)})
    if settings.steps < 1 or settings.batch_size < 1 or settings.warmup < 0:
        raise Img2ImgError("--steps and --batch-size must be at least 1, --warmup at least 0")
    r = run_benchmark(settings)
    print(f"{r['sec_per_iter'] * 1e3:.1f} ms/step (median of {settings.steps}; "
          f"min {r['sec_per_iter_min'] * 1e3:.1f}, max {r['sec_per_iter_max'] * 1e3:.1f}), "
          f"{r['images_per_s']:.2f} images/s, peak memory {r['peak_mem_mb']:.0f} MB, "
          f"{r['achieved_tflops']:.3f} TFLOP/s = {r['percent_of_peak']:.1f}% of the measured "
          f"{r['peak_tflops']:.3f} TFLOP/s matmul peak")
    if args.json:
        print(json.dumps(r))
    return 0


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="make a small synthetic paired dataset, train pix2pix on it briefly, translate")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--install-to", help="copy the trained model into this folder (skip training if it is there)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from .demo import run_demo as demo

    demo(Path(args.out), steps=args.steps, device=args.device,
         install_to=Path(args.install_to) if args.install_to else None)
    return 0


def add_fid_parser(sub) -> None:
    p = sub.add_parser("fid", help="FID (and KID) between two image folders or saved statistics, as pytorch-fid")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="two folders of images or .npz statistics; one PATH with --save-stats only saves its statistics")
    p.add_argument("--weights", help="Inception weights pt_inception-2015-12-05-6726825d.pth (default: "
                   "$IMG2IMG_FID_WEIGHTS, the torch hub cache, or a download)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--save-stats", metavar="OUT.npz", help="save the statistics of the last PATH")
    p.add_argument("--kid", action="store_true", help="also report KID (mean ± std over subsets)")
    p.set_defaults(run=run_fid)


def run_fid(args) -> int:
    from .metrics import InceptionFeatures, frechet_distance, kid, load_statistics, save_statistics, statistics
    from .training import resolve_device

    if len(args.paths) > 2 or (len(args.paths) == 1 and not args.save_stats):
        raise Img2ImgError("give two PATHs (folders or .npz statistics), or one PATH with --save-stats")
    extractor = None
    stats = []
    for path in map(Path, args.paths):
        if path.suffix == ".npz":
            stats.append(load_statistics(path))
            continue
        if not path.is_dir():
            raise Img2ImgError(f"{path}: not a folder of images or a .npz statistics file")
        if extractor is None:
            extractor = InceptionFeatures(args.weights, resolve_device(args.device), args.batch_size)
        features = extractor.from_folder(path)
        stats.append((*statistics(features), features))
    if args.save_stats:
        save_statistics(args.save_stats, *stats[-1])
        print(f"saved statistics of {args.paths[-1]} to {args.save_stats}")
    if len(stats) < 2:
        return 0
    (mu1, sigma1, f1), (mu2, sigma2, f2) = stats
    if args.kid:
        if f1 is None or f2 is None:
            raise Img2ImgError("KID needs features: this .npz holds only mu and sigma (as pytorch-fid saves them)")
        mean, std = kid(f1, f2)
        print(f"KID {mean:.6f} ± {std:.6f}")
    print(f"FID {frechet_distance(mu1, sigma1, mu2, sigma2):.4f}")
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
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--val-fraction", type=float, default=0.1)
    q.add_argument("--method", default="canny")
    q.set_defaults(run=run_datasets_edges)
    q = ds.add_parser("combine", help="A|B images from same-named files in two folders")
    q.add_argument("--a", required=True)
    q.add_argument("--b", required=True)
    q.add_argument("--output", required=True)
    q.add_argument("--resize-b", action="store_true", help="resize B to A's size where they differ")
    q.set_defaults(run=run_datasets_combine)


def run_datasets_download(args) -> int:
    from .datasets import download_dataset

    download_dataset(args.name, args.root, args.url)
    return 0


def run_datasets_list(args) -> int:
    from .datasets import DATASETS

    for source in DATASETS.values():
        layout = "train/val/test of A|B images" if source.kind == "pix2pix" else "trainA/trainB/testA/testB"
        print(f"{source.name:24s} {source.kind:8s} {layout:30s} {source.url or source.note}")
    return 0


def run_datasets_edges(args) -> int:
    from .datasets import make_edges_dataset

    report = make_edges_dataset(args.input, args.output, args.size, args.val_fraction, args.method)
    print(report.summary(f"edges -> {args.output}/train and /val"))
    return 0


def run_datasets_combine(args) -> int:
    from .datasets import combine_folders

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
    q.add_argument("--norm", choices=["batch", "instance", "none"], help="default: inferred from the keys")
    q.set_defaults(run=run_pretrained_convert)


def run_pretrained_download(args) -> int:
    from .pretrained import download_pretrained

    download_pretrained(args.name, args.dir, args.url)
    return 0


def run_pretrained_convert(args) -> int:
    from .pretrained import convert

    convert(args.src, args.dst, netG=args.netG, norm=args.norm)
    return 0


def run_pretrained_list(args) -> int:
    from .pretrained import PRETRAINED

    for m in PRETRAINED.values():
        print(f"{m.name:28s} {m.method:8s} {m.domains[0]} -> {m.domains[1]:10s} {m.url}")
    return 0


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="generator-only checkpoint for inference (fp16, no optimizer state)")
    p.add_argument("checkpoint")
    p.add_argument("output")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from .training.checkpoint import export_generators

    out = export_generators(args.checkpoint, args.output, half=not args.fp32)
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="img2img", description="Image-to-image translation: pix2pix and CycleGAN.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_translate_parser(sub)
    add_fid_parser(sub)
    add_datasets_parser(sub)
    add_pretrained_parser(sub)
    add_export_parser(sub)
    add_demo_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Img2ImgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
