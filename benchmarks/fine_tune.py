"""Starting from a trained model against starting from scratch, at the same CPU minutes: val L1,
PSNR, SSIM, FID and KID on a held-out split that neither the starting model nor the runs saw.

    python benchmarks/fine_tune.py [--data ../shared/datasets/facades_tiny] [--val test]
        [--init-from checkpoints/maps_aerial2map/model.pt] [--marks 750,2250,4500] [--out runs/fine_tune]

Two `img2img train` runs of the same architecture (the starting model's: U-Net 256, ngf 32,
instance norm) and the same settings (pix2pix's defaults, a constant learning rate), one with
`--init-from`, one from random weights, each on one CPU thread, side by side. Each stops at
every mark (steps) and continues with `--resume auto` (bit for bit as one run), and its
checkpoint at the mark is kept; the training seconds are each segment's own. Then every kept
checkpoint is scored on the held-out split (fp32, Translator), and a picture of both outputs at
the last mark is written (input | from scratch | from the model | target).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

ARMS = ("scratch", "from the model")


def train_argv(args, arm: str, steps: int, first: bool) -> list[str]:
    out = Path(args.out) / arm.replace(" ", "_")
    argv = [sys.executable, "-m", "img2img", "train", "--out", str(out), "--max-steps", str(steps)]
    if not first:
        return [*argv, "--resume", "auto"]
    argv += ["--data", args.data, "--netG", "unet_256", "--ngf", "32", "--norm", "instance", "--size", "256",
             "--load-size", "286", "--num-workers", "0", "--epochs", "100000", "--epochs-decay", "0",
             "--fid-every", "0", "--snapshot-every", "0", "--keep", "1", "--log-every", "50", "--sample-every", "0",
             "--save-every", "0", "--device", "cpu"]
    return [*argv, "--init-from", args.init_from] if arm == "from the model" else argv


def train(args) -> dict[tuple[str, int], float]:
    """Both arms to each mark, side by side: {(arm, mark): training seconds so far}."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    seconds = {arm: 0.0 for arm in ARMS}
    spent = {}
    for i, mark in enumerate(args.marks):
        started, processes = time.monotonic(), {}
        for arm in ARMS:
            log = open(Path(args.out) / f"{arm.replace(' ', '_')}.log", "a")
            processes[arm] = (subprocess.Popen(train_argv(args, arm, mark, i == 0), stdout=log, stderr=subprocess.STDOUT,
                                               env=env, cwd=ROOT), started)
        for arm, (process, start) in processes.items():
            if process.wait() != 0:
                raise SystemExit(f"{arm}: img2img train failed (see {args.out}/{arm.replace(' ', '_')}.log)")
            seconds[arm] += time.monotonic() - start
            folder = Path(args.out) / arm.replace(" ", "_")
            shutil.copy(folder / "checkpoints" / "latest.pt", Path(args.out) / f"{arm.replace(' ', '_')}_{mark}.pt")
            spent[arm, mark] = seconds[arm]
        print(f"step {mark}: " + ", ".join(f"{arm} {seconds[arm] / 60:.1f} min" for arm in ARMS), flush=True)
    return spent


def evaluate(args, spent) -> None:
    import numpy as np
    import torch
    from model_card import scores
    from PIL import Image

    from img2img.data.builders import build_val_dataset
    from img2img.io.readers import to_tensor, to_uint8
    from img2img.metrics import InceptionFeatures, feature_statistics, frechet_distance, kid
    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
    from img2img.translate.translator import Translator

    first = Path(args.out) / f"scratch_{args.marks[0]}.pt"
    cfg = checkpoint_config(load_checkpoint(first))
    cfg.data.val_dir = str(Path(args.data) / args.val)
    val = build_val_dataset(cfg, "paired")
    extractor = InceptionFeatures(device="cpu")
    real = extractor.from_tensors(torch.stack([val[i]["B"] for i in range(len(val))]))
    rows, last = [], {}
    print(f"held out: {len(val)} pairs of {cfg.data.val_dir} at 256 px; FID/KID of {len(val)} images are noisy")
    print("| start | step | training minutes (1 thread) | val L1 | PSNR | SSIM | FID | KID |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in ARMS:
        for mark in args.marks:
            path = Path(args.out) / f"{arm.replace(' ', '_')}_{mark}.pt"
            translator = Translator.from_checkpoint(path, device="cpu", engine="torch", precision="fp32")
            l1, psnr, ssim, outputs = scores(translator, val)
            fake = extractor.from_tensors(torch.stack([to_tensor(o) for o in outputs]))
            fid = frechet_distance(*feature_statistics(fake), *feature_statistics(real))
            kid_mean, _ = kid(fake, real)
            minutes = spent.get((arm, mark), float("nan")) / 60
            rows.append([arm, mark, f"{minutes:.1f}", f"{l1:.4f}", f"{psnr:.2f}", f"{ssim:.4f}", f"{fid:.1f}",
                         f"{kid_mean:.3f}"])
            print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
            last[arm] = outputs
    with open(Path(args.out) / "fine_tune.csv", "w", newline="") as f:
        csv.writer(f).writerows([["start", "step", "minutes", "l1", "psnr", "ssim", "fid", "kid"], *rows])
    picture = [np.concatenate([to_uint8(val[i]["A"]), last["scratch"][i], last["from the model"][i],
                               to_uint8(val[i]["B"])], axis=1) for i in args.pictures]
    figure = Path(args.figure)
    figure.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(picture, axis=0)).save(figure, quality=85)
    print(f"{figure}: input | from scratch | from the model | target, step {args.marks[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "facades_tiny"))
    parser.add_argument("--val", default="test", help="the held-out split, a folder of --data")
    parser.add_argument("--init-from", default=str(ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"))
    parser.add_argument("--marks", default="750,2250,4500", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each run")
    parser.add_argument("--out", default="runs/fine_tune")
    parser.add_argument("--figure", default=str(ROOT / "benchmarks" / "figures" / "fine_tune.jpg"))
    parser.add_argument("--pictures", default="0,4,8", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--eval-only", action="store_true", help="score the kept checkpoints again")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    spent = {}
    if not args.eval_only:
        spent = train(args)
        (Path(args.out) / "minutes.csv").write_text("".join(f"{a},{m},{s}\n" for (a, m), s in spent.items()))
    elif (Path(args.out) / "minutes.csv").is_file():
        for line in (Path(args.out) / "minutes.csv").read_text().splitlines():
            arm, mark, seconds = line.split(",")
            spent[arm, int(mark)] = float(seconds)
    evaluate(args, spent)


if __name__ == "__main__":
    main()
