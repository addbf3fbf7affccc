"""How int8's activation calibration moves its worst images (issue 64): one checkpoint quantised
as translation does (translate.precision.quantize_int8), with each of ACTIVATION_CALIBRATIONS and
each number of layers next to the output in float, calibrated on the first 32 images of --calibration
(the app's default: the first 32 of the validation split), each scored against the PyTorch module
on the images of --val (default: the 100 maps val images) and the first 100 of --more (default:
maps train), at 256 px. Prints, per row: ms per image (batch 1, median), the mean and 99.9th
percentile output levels pooled over --val, the worst image's 99.9th percentile over both sets,
and those of the 8 images held out for the gate (split_for_gate: --calibration's 33rd to 40th).

    python benchmarks/int8_calibration.py CHECKPOINT [--float-layers 1 2 3 4]
        [--calibration ../shared/datasets/maps/val] [--val ../shared/datasets/maps/val]
        [--more ../shared/datasets/maps/train] [--seconds 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from phase_conv import images, timed  # noqa: E402

MAPS = ROOT.parent / "shared" / "datasets" / "maps"


def pooled(per_image: list[np.ndarray]) -> str:
    levels = np.concatenate(per_image)
    return f"{levels.mean():.2f} / {np.percentile(levels, 99.9):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--float-layers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--calibration", default=str(MAPS / "val"))
    parser.add_argument("--val", default=str(MAPS / "val"))
    parser.add_argument("--more", default=str(MAPS / "train"))
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    import onnxruntime as ort

    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
    from img2img.translate.onnx_graph import export_generator
    from img2img.translate.phase_conv import rewrite_transposed
    from img2img.translate.precision import ACTIVATION_CALIBRATIONS, difference_levels, quantize_int8

    state = load_checkpoint(args.checkpoint)
    cfg, generator = checkpoint_config(state), load_generators(state)["AtoB"]
    calibration = images(Path(args.calibration), 32, 256)
    held_out = images(Path(args.calibration), 8, 256, skip=32)
    val, more = images(Path(args.val), 100, 256), images(Path(args.more), 100, 256)
    probes = held_out + val + more
    with torch.no_grad():
        references = [generator(torch.from_numpy(x)).numpy() for x in probes]
    print(f"{args.checkpoint}: {len(val)} images of {args.val}, {len(more)} of {args.more}")
    print("| activations by | layers in float | ms | val: mean / 99.9th pct levels | worst image (set, index, "
          "99.9th pct) | the gate's 8 held-out images |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        fp32 = export_generator(rewrite_transposed(generator), cfg, "AtoB", Path(work) / "fp32.onnx", "image")
        for activations in ACTIVATION_CALIBRATIONS:
            for float_layers in args.float_layers:
                int8 = quantize_int8(fp32, Path(work) / "int8.onnx", calibration, {}, float_layers, activations)
                session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
                per_image = [difference_levels(r, session.run(None, {"image": x})[0]) for x, r in zip(probes, references)]
                tails = [float(np.percentile(p, 99.9)) for p in per_image[len(held_out):]]
                worst = int(np.argmax(tails))
                where = f"val {worst}" if worst < len(val) else f"more {worst - len(val)}"
                print(f"| {activations} | {float_layers} | {timed(session, probes[0], args.seconds):.1f} | "
                      f"{pooled(per_image[len(held_out):len(held_out) + len(val)])} | {where}: {tails[worst]:.1f} | "
                      f"{pooled(per_image[:len(held_out)])} |", flush=True)


if __name__ == "__main__":
    main()
