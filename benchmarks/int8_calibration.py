"""How int8's activation calibration moves its worst pixels (issue 64): one checkpoint quantised
as the app does (translate.precision.quantize_int8, with N layers next to the output in float),
its activations calibrated three ways, each scored against the PyTorch module on the 100 maps
val images at 256 px: mean and 99.9th-percentile output levels, and the three worst images.

    python benchmarks/int8_calibration.py CHECKPOINT --float-layers 2
        [--calibration ../shared/datasets/maps/train] [--val ../shared/datasets/maps/val]
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

from phase_conv import images  # noqa: E402

# The recipe's own (percentile 99.999), a wider percentile, and the whole range.
METHODS = {"percentile 99.999 (the recipe's)": {}, "percentile 99.9999": {"extra_options": {"CalibPercentile": 99.9999}},
           "min-max": {"calibrate_method": "MinMax"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--float-layers", type=int, default=2)
    parser.add_argument("--calibration", default=str(ROOT.parent / "shared" / "datasets" / "maps" / "train"))
    parser.add_argument("--val", default=str(ROOT.parent / "shared" / "datasets" / "maps" / "val"))
    args = parser.parse_args()
    import onnxruntime as ort
    import onnxruntime.quantization as quantization

    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
    from img2img.translate.onnx_graph import export_generator
    from img2img.translate.phase_conv import rewrite_transposed
    from img2img.translate.precision import difference_levels, quantize_int8

    state = load_checkpoint(args.checkpoint)
    cfg, generator = checkpoint_config(state), load_generators(state)["AtoB"]
    calibration, probes = images(Path(args.calibration), 32, 256), images(Path(args.val), 100, 256)
    with torch.no_grad():
        references = [generator(torch.from_numpy(x)).numpy() for x in probes]
    quantize_static = quantization.quantize_static
    with tempfile.TemporaryDirectory() as work:
        fp32 = export_generator(rewrite_transposed(generator), cfg, "AtoB", Path(work) / "fp32.onnx", "image")
        for label, options in METHODS.items():
            options = {k: getattr(quantization.CalibrationMethod, v) if k == "calibrate_method" else v
                       for k, v in options.items()}
            # quantize_int8 calls onnxruntime's quantize_static; this run changes only its calibration.
            quantization.quantize_static = lambda *a, options=options, **k: quantize_static(*a, **{**k, **options})
            int8 = quantize_int8(fp32, Path(work) / "int8.onnx", calibration, {}, args.float_layers)
            session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
            per_image = [difference_levels(r, session.run(None, {"image": x})[0]) for x, r in zip(probes, references)]
            pooled = np.concatenate(per_image)
            worst = sorted(((float(np.percentile(p, 99.9)), i) for i, p in enumerate(per_image)), reverse=True)[:3]
            print(f"{label}, {args.float_layers} float layers: mean {pooled.mean():.2f}, 99.9th pct "
                  f"{np.percentile(pooled, 99.9):.1f} levels; worst images (val index, 99.9th pct): "
                  f"{', '.join(f'{i} ({v:.1f})' for v, i in worst)}", flush=True)


if __name__ == "__main__":
    main()
