"""pix2pix on maps, ours against the canonical code's own training loop, over seeds: is our paper
recipe behind the reference beyond the spread between seeds?

    python benchmarks/seed_study.py train --seeds 0 1 2 --out ../scratch/seed_study [--jobs 2]
    python benchmarks/seed_study.py score --out ../scratch/seed_study

`train`: for each seed, two runs on ../shared/datasets/maps, unet_128 at 128 px (load 143, random
crop and flip), batch 1, Adam 2e-4, for --epochs epochs at constant learning rate:
- ours: `img2img train --model pix2pix --recipe paper --no-fused-adam`, seeded by `--seed`;
- the reference: its own `train.py`, unmodified, run with `random`, NumPy and torch seeded first
  (it seeds nothing itself). Stand-in `wandb` and `dominate` modules let it import without its
  plotting packages, which a run with `--no_html` never calls.
Before each run its log gets the parity harness's 1-step check against the reference
(benchmarks/parity.py, the same architecture), so that every run says that its step is the
reference's. Each run uses one thread; --jobs runs that many at once.

`score`: one scorer for every run, benchmarks/ablation.py's (issue 19's protocol): each run's
generator (ours from its last checkpoint, the reference's `latest_net_G.pth` through
`img2img pretrained`'s conversion) translates the 100 val aerials, resized to 128 px with PIL's
bicubic, in fp32 with batch norm from each image's own statistics (the paper's test mode, and
img2img translate's default; dropout off). Against the val maps at 128 px: mean per-image L1 on
8-bit pixels / 255, PSNR (dB) and SSIM (scikit-image's defaults). Printed: each run, the mean
and spread (sample standard deviation) per side, and ours - reference paired by seed with its 95%
t interval.

    pip install -e '.[bench]'    # scikit-image, for SSIM
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
MAPS = ROOT.parent / "shared" / "datasets" / "maps"
SIZE, LOAD_SIZE, NET = 128, 143, "unet_128"
# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

# Runs the reference's train.py as its own script, seeded, without its plotting packages.
REFERENCE_RUNNER = """
import random, runpy, sys, types
import numpy, torch
for name in ("wandb", "dominate", "dominate.tags"):
    stand_in = types.ModuleType(name)
    stand_in.__getattr__ = lambda attribute: None
    sys.modules[name] = stand_in
seed, root, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
random.seed(seed); numpy.random.seed(seed); torch.manual_seed(seed)
sys.path.insert(0, root)
sys.argv = [root + "/train.py", *argv]
runpy.run_path(root + "/train.py", run_name="__main__")
"""


def our_command(seed: int, out: Path, epochs: int, data: Path) -> list[str]:
    return [sys.executable, "-m", "img2img", "train", "--model", "pix2pix", "--recipe", "paper",
            "--data", str(data), "--out", str(out), "--netG", NET, "--size", str(SIZE), "--load-size", str(LOAD_SIZE),
            "--epochs", str(epochs), "--epochs-decay", "0", "--seed", str(seed), "--num-workers", "0",
            "--no-fused-adam", "--fid-every", "0", "--log-every", "100", "--sample-every", "0", "--save-every", "0"]


def reference_command(seed: int, out: Path, epochs: int, data: Path) -> list[str]:
    return [sys.executable, "-c", REFERENCE_RUNNER, str(seed), str(REFERENCE / "pix2pix-cyclegan"),
            "--dataroot", str(data), "--name", out.name, "--checkpoints_dir", str(out.parent), "--model", "pix2pix",
            "--netG", NET, "--load_size", str(LOAD_SIZE), "--crop_size", str(SIZE), "--n_epochs", str(epochs),
            "--n_epochs_decay", "0", "--num_threads", "0", "--no_html", "--save_epoch_freq", "1", "--print_freq", "100"]


def parity_check(seed: int) -> dict:
    """The harness's 1-step check at this study's architecture and size."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import parity

    return parity.run("pix2pix", 1, SIZE, fused_adam=False, seed=seed, extra=["--netG", NET])


def train_one(side: str, seed: int, out: Path, epochs: int, data: Path, check: dict) -> int:
    folder = out / f"{side}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    command = (our_command if side == "ours" else reference_command)(seed, folder, epochs, data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with open(folder / "run.log", "w") as log:
        log.write(f"parity check (benchmarks/parity.py, 1 step, pix2pix {NET} at {SIZE} px, --no-fused-adam): "
                  f"{json.dumps(check)}\n")
        log.write("command: " + " ".join(command) + "\n")
        log.flush()
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=False).returncode


def train(args) -> None:
    import torch

    torch.set_num_threads(1)
    runs = []
    for seed in args.seeds:
        check = parity_check(seed)
        if check["parameters_and_buffers"] or check["adam_moments"]:
            raise SystemExit(f"seed {seed}: our step is not the reference's: {check}")
        runs += [("ours", seed, check), ("reference", seed, check)]
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda r: train_one(r[0], r[1], args.out, args.epochs, args.data, r[2]), runs))
    for (side, seed, _), code in zip(runs, codes):
        print(f"{side} seed {seed}: exit {code}")


def checkpoint_of(folder: Path) -> Path:
    """Ours: the run's last checkpoint; the reference's: its generator, converted once."""
    from img2img.translate.pretrained import convert

    if folder.name.startswith("ours"):
        return folder / "checkpoints" / "latest.pt"
    path = folder / "converted.pt"
    if not path.exists():
        convert(folder / "latest_net_G.pth", path, size=SIZE)
    return path


def score(args) -> None:
    import torch
    from ablation import pixel_scores, val_pairs

    torch.set_num_threads(args.threads)
    pairs = val_pairs(args.data)
    scores = {}
    for folder in sorted(args.out.glob("*_seed*")):
        side, seed = folder.name.split("_seed")
        result = pixel_scores(checkpoint_of(folder), pairs)
        scores[(side, int(seed))] = {"L1": result["l1"], "PSNR": result["psnr"], "SSIM": result["ssim"]}
        print(json.dumps({"run": folder.name, **scores[(side, int(seed))]}), flush=True)
    seeds = sorted({s for side, s in scores if side == "ours"} & {s for side, s in scores if side == "reference"})
    print(f"\n{len(seeds)} seeds: {seeds}")
    def sd(values):
        return statistics.stdev(values) if len(values) > 1 else float("nan")

    print("| metric | ours: mean ± sd | reference: mean ± sd | ours − reference (paired), mean [95% CI] |")
    print("|---|---|---|---|")
    for metric in ("L1", "PSNR", "SSIM"):
        ours = [scores["ours", s][metric] for s in seeds]
        ref = [scores["reference", s][metric] for s in seeds]
        diff = [o - r for o, r in zip(ours, ref)]
        half = T95[len(diff) - 1] * sd(diff) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        mean = statistics.fmean(diff)
        print(f"| {metric} | {statistics.fmean(ours):.4f} ± {sd(ours):.4f} | "
              f"{statistics.fmean(ref):.4f} ± {sd(ref):.4f} | "
              f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}] |")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--epochs", type=int, default=1, help="epochs of the 1096 maps pairs (one step each)")
    t.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each)")
    t.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--threads", type=int, default=2)
    for command in (t, s):
        command.add_argument("--data", type=Path, default=MAPS, help="a paired A|B dataset with train/ and val/")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if not (REFERENCE / "pix2pix-cyclegan" / "train.py").is_file() or not args.data.is_dir():
        raise SystemExit(f"needs the reference code at {REFERENCE} and the data at {args.data}")
    train(args) if args.command == "train" else score(args)


if __name__ == "__main__":
    main()
