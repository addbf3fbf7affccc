"""A generator at each precision (issue 53): speed and quality against its own fp32 outputs.

    python benchmarks/precision.py CHECKPOINT --data DATASET [--direction AtoB] [--fid-reference DIR]

For each of fp32, int8 and (where the CPU has bf16 instructions) bf16, on the validation split of
DATASET (the paired `val/`, or the unpaired `testA`/`testB` of the direction's source):
- img/s of the network alone, batch 1, at the training size (or --size), and that
  as a fraction of this CPU's peak for the precision (benchmarks/cpu_limit.py's kernels);
- img/s of a folder translated as `img2img translate --size N --batch-size 1` does it, with I/O;
- against the fp32 outputs: mean and 99.9th-percentile absolute difference in output levels,
  and PSNR;
- against the targets (paired data): L1 (in [-1, 1], as training's val L1) and PSNR; and FID of
  the outputs against the targets, or against --fid-reference (unpaired: e.g. the paintings).

int8 calibrates on the first 40 source images of the train split (written to a scratch folder),
never on the images it is scored on. The model's outputs are compared as the 8-bit PNGs a user
gets.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_limit import forward_flops, peaks  # noqa: E402

from img2img.io.readers import list_images  # noqa: E402
from img2img.metrics import fid_between  # noqa: E402
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint  # noqa: E402
from img2img.translate.batch import BatchSettings, translate_files  # noqa: E402
from img2img.translate.precision import bf16_is_native, difference_levels, psnr  # noqa: E402
from img2img.translate.translator import Translator  # noqa: E402

CALIBRATION_FILES = 40


def source_images(root: Path, split: str, direction: str, out: Path, limit: int | None) -> tuple[list[Path], list[Path]]:
    """The split's source images (and, for paired data, targets) as PNG files in `out`."""
    (out / "source").mkdir(parents=True)
    (out / "target").mkdir()
    paired = (root / split).is_dir() and not (root / f"{split}A").is_dir()
    if paired:
        files = sorted(list_images(root / split))[:limit]
    else:
        files = sorted(list_images(root / f"{split}{direction[0]}"))[:limit]
    sources, targets = [], []
    for path in files:
        image = Image.open(path).convert("RGB")
        if paired:
            w, h = image.size
            halves = image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h))
            source, target = halves if direction == "AtoB" else halves[::-1]
            target.save(out / "target" / f"{path.stem}.png")
            targets.append(out / "target" / f"{path.stem}.png")
        else:
            source = image
        source.save(out / "source" / f"{path.stem}.png")
        sources.append(out / "source" / f"{path.stem}.png")
    return sources, targets


def network_rate(translator: Translator, direction: str, size: int, seconds: float) -> float:
    x = torch.rand(1, translator.network_formats(direction).source.channels, size, size) * 2 - 1
    translator.translate_tensor(x, direction)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 3:
        translator.translate_tensor(x, direction)
        done += 1
    return done / (time.perf_counter() - start)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True, help="dataset root: val/ (paired) or testA/testB (unpaired)")
    parser.add_argument("--direction", default="AtoB")
    parser.add_argument("--split", default=None, help="split to score (default val, or test for unpaired data)")
    parser.add_argument("--limit", type=int, help="score only the first N images")
    parser.add_argument("--fid-reference", help="folder FID compares against (default: the targets)")
    parser.add_argument("--size", type=int, help="translate at SIZE x SIZE (default: the training size)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing of the network alone")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8", "bf16"])
    args = parser.parse_args()
    root = Path(args.data)
    cfg = checkpoint_config(load_checkpoint(args.checkpoint))
    size = args.size or cfg.data.crop_size[0]
    split = args.split or ("val" if (root / "val").is_dir() else "test")
    wanted = [p for p in args.precisions if p != "bf16" or bf16_is_native()]
    if "bf16" in args.precisions and "bf16" not in wanted:
        print(f"bf16 not run: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 instructions")
    peak = peaks(2.0)
    best = {p: max(v for k, v in peak.items() if k.endswith(p)) for p in ("fp32", "bf16", "int8")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources, targets = source_images(root, split, args.direction, work / "score", args.limit)
        source_images(root, "train", args.direction, work / "calibration", CALIBRATION_FILES)
        reference = Path(args.fid_reference) if args.fid_reference else work / "score" / "target"
        print(f"{args.checkpoint}: {cfg.method} {cfg.model.netG} ngf {cfg.model.ngf}, {args.direction}; "
              f"{len(sources)} {split} images of {root} at {size}²; calibration: {CALIBRATION_FILES} train images; "
              f"FID against {reference}")
        print("\n| precision (engine) | img/s, network | GFLOP/s | of peak | img/s, folder with I/O | "
              "mean levels | 99.9th pct | PSNR vs fp32 | L1 | PSNR vs target | FID |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        outputs: dict[str, list[np.ndarray]] = {}
        for precision in wanted:
            translator = Translator.from_checkpoint(args.checkpoint, device="cpu", precision=precision,
                                                    calibration=work / "calibration" / "source")
            gflop = forward_flops(translator.generator(args.direction), size) / 1e9
            rate = network_rate(translator, args.direction, size, args.seconds)
            out = work / "out" / precision
            start = time.perf_counter()
            translate_files(translator, work / "score" / "source", out,
                            BatchSettings(direction=args.direction, batch_size=1, size=size, fmt="png"))
            folder_rate = len(sources) / (time.perf_counter() - start)
            outputs[precision] = [pixels(out / f"{s.stem}.png") for s in sources]
            row = [translator.describe_precision(args.direction), f"{rate:.2f}", f"{gflop * rate:.1f}",
                   f"{100 * gflop * rate / best[precision]:.0f}%", f"{folder_rate:.2f}"]
            if precision == "fp32":
                row += ["0", "0", "∞"]
            else:
                levels = np.concatenate([np.abs(a - b).ravel() for a, b in zip(outputs["fp32"], outputs[precision])])
                row += [f"{levels.mean():.2f}", f"{np.percentile(levels, 99.9):.1f}", f"{psnr(levels):.1f} dB"]
            if targets:
                levels = np.concatenate([difference_levels(o / 127.5, pixels(t) / 127.5)
                                         for o, t in zip(outputs[precision], targets)])
                row += [f"{levels.mean() / 127.5:.5f}", f"{psnr(levels):.2f} dB"]
            else:
                row += ["-", "-"]
            row.append(f"{fid_between([out, reference]).fid:.2f}")
            print("| " + " | ".join(row) + " |", flush=True)
            print(f"  {args.direction}: {translator.precision_reason.get(args.direction, '')}", file=sys.stderr)
    print(f"\npeaks: fp32 {best['fp32']:.1f}, bf16 {best['bf16']:.1f}, int8 {best['int8']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
