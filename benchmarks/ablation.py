"""pix2pix ablation on maps at 128 px: train a variant, translate the 100 val images, score them,
and append a row to benchmarks/ablation.md (issue 19's protocol).

    pip install -e '.[bench]'    # scikit-image, for SSIM
    python benchmarks/ablation.py NAME [--steps N] [--seed 0] [--threads T] -- [img2img train flags]
    python benchmarks/ablation.py paper --steps 2000
    python benchmarks/ablation.py ema --steps 2000 -- --ema 0.999
    python benchmarks/ablation.py ema --raw-generator -- --ema 0.999   # the same run, scored without its EMA

Protocol: `img2img train --data maps --size 128 --load-size 143 --netG unet_128 --epochs 5
--epochs-decay 5 --seed S` plus the variant's flags (the full schedule is 10,960 steps at batch 1;
`--steps` stops earlier for screening, with the learning rate still constant; running the same
NAME again without `--steps` resumes the screened run to the full schedule). Evaluation:
the 100 val pairs, aerial and map each resized to 128 px with PIL's bicubic (as the canonical
test loads them), translated by the checkpoint (PyTorch in fp32, BatchNorm statistics per image,
dropout off); mean per-image L1 on 8-bit pixels / 255, mean PSNR, mean SSIM (scikit-image),
and FID/KID against the 100 real maps (pytorch-fid's Inception; 100 images make FID biased
upwards, so only differences between rows mean anything). s/step is the median over the logged
windows of the training step time. The same 4 val images' outputs are
saved side by side in benchmarks/figures/ablation/NAME.jpg.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from img2img.io.readers import list_images, to_tensor
from img2img.metrics import InceptionFeatures, feature_statistics, frechet_distance, kid
from img2img.translate.translator import Translator

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "ablation.md"
GRID_IMAGES = (3, 21, 42, 77)
SIZE = 128
HEADER = ("| variant | flags | seed | steps | val L1 ↓ | PSNR ↑ | SSIM ↑ | FID ↓ | KID ↓ | s/step |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n")


def val_pairs(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    pairs = []
    for path in sorted((data / "val").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem):
        with Image.open(path) as image:
            image = image.convert("RGB")
            w = image.width // 2
            a, b = image.crop((0, 0, w, image.height)), image.crop((w, 0, 2 * w, image.height))
        pairs.append((path.name, np.asarray(a.resize((SIZE, SIZE), Image.BICUBIC)),
                      np.asarray(b.resize((SIZE, SIZE), Image.BICUBIC))))
    return pairs


def seconds_per_step(run: Path) -> float:
    """Median over the logged windows of 1 / images per second (batch 1)."""
    with open(run / "metrics.csv") as f:
        speeds = [float(r["images_per_s"]) for r in csv.DictReader(f) if r.get("images_per_s")]
    return float(np.median([1 / s for s in speeds])) if speeds else float("nan")


def pixel_scores(checkpoint: Path, pairs) -> dict[str, float | list[np.ndarray]]:
    """Mean L1 (/255), PSNR and SSIM of the checkpoint's translations against the targets, and
    the translations. fp32, so that int8 (which `auto` may pick on a CPU) never enters a score."""
    translator = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch", precision="fp32")
    l1, psnr, ssim, outputs = [], [], [], []
    for _, a, b in pairs:
        out = np.asarray(translator.translate(Image.fromarray(a)))
        diff = out.astype(float) - b.astype(float)
        l1.append(np.abs(diff).mean() / 255)
        psnr.append(10 * math.log10(255**2 / max(np.mean(diff**2), 1e-10)))
        ssim.append(structural_similarity(out, b, channel_axis=2, data_range=255))
        outputs.append(out)
    return {"l1": float(np.mean(l1)), "psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "outputs": outputs}


def evaluate(checkpoint: Path, pairs) -> dict[str, float | list[np.ndarray]]:
    scores = pixel_scores(checkpoint, pairs)
    extractor = InceptionFeatures(device="cpu")
    fake = extractor.from_tensors(torch.stack([to_tensor(o) for o in scores["outputs"]]))
    real = extractor.from_tensors(torch.stack([to_tensor(b) for _, _, b in pairs]))
    kid_mean, _ = kid(fake, real, subset_size=50)
    return {**scores, "fid": frechet_distance(*feature_statistics(fake), *feature_statistics(real)), "kid": kid_mean}


def without_ema(checkpoint: Path, out: Path) -> Path:
    """A copy of `checkpoint` without the EMA generator, so that its own G translates."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if state["method"]["networks"].pop("G_ema", None) is None:
        raise SystemExit(f"{checkpoint}: the run kept no EMA generator")
    torch.save(state, out)
    return out


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--steps", type=int, help="stop after N steps (screening); default: the full 5 + 5 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "maps")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablation")
    parser.add_argument("--threads", type=int, help="torch threads of the training process (default: all)")
    parser.add_argument("--raw-generator", action="store_true",
                        help="no training: score the finished run's own G instead of its EMA (row NAME-raw-G)")
    args = parser.parse_args(argv)
    run = args.runs / f"{args.name}_seed{args.seed}"
    checkpoint = run / "checkpoints" / "latest.pt"
    if args.raw_generator:
        checkpoint = without_ema(checkpoint, run / "raw_generator.pt")
        args.name += "-raw-G"
    train = [sys.executable, "-m", "img2img", "train", "--model", "pix2pix", "--data", str(args.data), "--size", str(SIZE),
             "--load-size", "143", "--netG", "unet_128", "--epochs", "5", "--epochs-decay", "5",
             "--seed", str(args.seed), "--out", str(run), "--log-every", "100", "--sample-every", "1000",
             "--save-every", "1000", "--fid-every", "0", "--resume", "auto", *extra]
    # Always given, so that a screened run resumed without --steps continues to the full schedule.
    full_schedule = 10 * len(list_images(args.data / "train"))
    train += ["--max-steps", str(args.steps or full_schedule)]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    if not args.raw_generator:
        start = time.perf_counter()
        subprocess.run(train, check=True, env=env)
        print(f"trained in {time.perf_counter() - start:.0f} s")
    pairs = val_pairs(args.data)
    scores = evaluate(checkpoint, pairs)
    steps = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["progress"]["step"]
    grid = np.concatenate([scores["outputs"][i] for i in GRID_IMAGES], axis=1)
    figure = ROOT / "benchmarks" / "figures" / "ablation" / f"{args.name}_seed{args.seed}_{steps}.jpg"
    figure.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(figure, quality=90)
    row = (f"| {args.name} | `{' '.join(extra) or '(paper)'}` | {args.seed} | {steps} | {scores['l1']:.4f} | "
           f"{scores['psnr']:.2f} | {scores['ssim']:.4f} | {scores['fid']:.1f} | {scores['kid']:.4f} | "
           f"{seconds_per_step(run):.3f} |\n")
    if not TABLE.exists():
        TABLE.write_text("# pix2pix ablation rows (benchmarks/ablation.py)\n\n" + HEADER)
    with open(TABLE, "a") as f:
        f.write(row)
    print(row, end="")
    print(f"grid: {figure.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
