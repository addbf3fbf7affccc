"""int8 against fp32 in a model's own output units (issue 53: 16-bit and float models), e.g.
Hounsfield units for a CT model.

    python benchmarks/precision_units.py CHECKPOINT --inputs DIR --calibration DIR [--direction AtoB]

Every readable file of --inputs (DICOM, 16-bit PNG/TIFF, .npy, ...) is translated whole at fp32
and at int8 (calibrated on --calibration), and the absolute differences are reported in the
output's units and as a share of its value range.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from img2img.io.readers import is_image_file
from img2img.translate.translator import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--direction", default="AtoB")
    args = parser.parse_args()
    files = sorted(p for p in args.inputs.rglob("*") if p.is_file() and is_image_file(p))
    fp32 = Translator.from_checkpoint(args.checkpoint, device="cpu", precision="fp32")
    int8 = Translator.from_checkpoint(args.checkpoint, device="cpu", precision="int8", calibration=args.calibration)
    target = fp32.formats(args.direction).target
    low, high = target.lo, target.hi
    a = fp32.translate_pixels([str(f) for f in files], direction=args.direction)
    b = int8.translate_pixels([str(f) for f in files], direction=args.direction)
    diff = np.concatenate([np.abs(x.astype(np.float64) - y.astype(np.float64)).ravel() for x, y in zip(a, b)])
    cfg = fp32.cfg
    print(f"{args.checkpoint}: {cfg.method} {cfg.model.netG} ngf {cfg.model.ngf}; output {target.describe()}; "
          f"{len(files)} files of {args.inputs}")
    print(f"int8 against fp32: mean {diff.mean():.2f}, 99.9th percentile {np.percentile(diff, 99.9):.2f}, "
          f"largest {diff.max():.2f} output units; mean {100 * diff.mean() / (high - low):.3f}% of the "
          f"{low:g}..{high:g} range")


if __name__ == "__main__":
    main()
