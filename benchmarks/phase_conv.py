"""Transposed convolutions as phase convolutions (issue 64): for each generator, onnxruntime's
speed on this CPU at batch 1 for the fp32 graph as exported (ConvTranspose), the fp32 graph
rewritten (translate.phase_conv), and the int8 model made from the rewritten one (the app's
recipe), with how far each is from the PyTorch module.

    python benchmarks/phase_conv.py [--sizes 256 1024] [--seconds 5]
        [--checkpoint checkpoints/maps_aerial2map/model.pt] [--calibration ../shared/datasets/maps/val]

Generators: the bundled maps U-Net (ngf 32, its own weights), and, with seeded random weights,
the paper's U-Net (ngf 64) and a CycleGAN ResNet-9 (ngf 64). int8 calibrates on 16 images of
--calibration (the maps val photos' left halves) at 256 px; the differences are
measured on 4 other images, in output levels (0-255): mean and 99.9th percentile.
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

ROOT = Path(__file__).resolve().parents[1]


def images(folder: Path, count: int, size: int, skip: int = 0) -> list[np.ndarray]:
    """[1, 3, size, size] arrays in [-1, 1]: the left half of each paired picture, resized."""
    out = []
    for path in sorted(folder.iterdir())[skip:skip + count]:
        with Image.open(path) as im:
            left = im.convert("RGB").crop((0, 0, im.width // 2, im.height)).resize((size, size), Image.BICUBIC)
        out.append((np.asarray(left, dtype=np.float32).transpose(2, 0, 1)[None] / 127.5 - 1))
    return out


def timed(session, x: np.ndarray, seconds: float) -> float:
    """Milliseconds per image, the median of runs over `seconds` after one warm-up."""
    session.run(None, {"image": x})
    times, end = [], time.monotonic() + seconds
    while time.monotonic() < end or len(times) < 3:
        start = time.perf_counter()
        session.run(None, {"image": x})
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((np.clip(a, -1, 1) + 1) * 127.5 - (np.clip(b, -1, 1) + 1) * 127.5).ravel()


def generators(checkpoint: Path):
    """(name, generator, config) of each generator measured."""
    from img2img.methods import METHODS, new_run_config
    from img2img.models import init_weights
    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators

    state = load_checkpoint(checkpoint)
    yield "bundled maps U-Net (ngf 32)", load_generators(state)["AtoB"], checkpoint_config(state)
    for name, method, netG in (("U-Net 256 (ngf 64)", "pix2pix", "unet_256"),
                               ("ResNet-9 (ngf 64)", "cyclegan", "resnet_9blocks")):
        torch.manual_seed(0)
        cfg = new_run_config(method)
        cfg.model.netG = netG
        yield name, init_weights(METHODS[method].build_generator(cfg.model, "AtoB")).eval(), cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"))
    parser.add_argument("--calibration", default=str(ROOT.parent / "shared" / "datasets" / "maps" / "val"))
    args = parser.parse_args()
    import onnxruntime as ort

    from img2img.translate.onnx_graph import export_generator
    from img2img.translate.phase_conv import rewrite_transposed
    from img2img.translate.precision import META_FLOAT_LAYERS, onnx_metadata, write_int8

    print(f"onnxruntime {ort.__version__}, {torch.get_num_threads()} threads; ms per image at batch 1 (median)")
    print("| generator | size | fp32 as exported | fp32 rewritten | int8 (layers kept in float at the output) | "
          "int8 speed-up | "
          "int8 mean / 99.9th pct levels | rewritten fp32 max levels |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for name, generator, cfg in generators(Path(args.checkpoint)):
            plain = export_generator(generator, cfg, "AtoB", work / "plain.onnx")
            phased = export_generator(rewrite_transposed(generator), cfg, "AtoB", work / "phased.onnx")
            for size in args.sizes:
                # Calibrated at 256 px, as the app calibrates at the training size: percentile
                # calibration keeps every activation value, too many at 1024 px.
                calibration = images(Path(args.calibration), 16, 256)
                probes = images(Path(args.calibration), 4, size, skip=16)
                # The app's recipe: the fewest float layers next to the output that pass the gate
                # on 8 held-out images (at 256 px, as the app's are at the training size).
                int8 = write_int8(generator, cfg, "AtoB", "image", work / f"int8_{size}.onnx", calibration, "-", "-",
                                  images(Path(args.calibration), 8, 256, skip=20))
                kept = onnx_metadata(int8)[META_FLOAT_LAYERS]
                sessions = {k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                            for k, p in (("plain", plain), ("phased", phased), ("int8", int8))}
                ms = {k: timed(s, probes[0], args.seconds) for k, s in sessions.items()}
                with torch.no_grad():
                    reference = [generator(torch.from_numpy(x)).numpy() for x in probes]
                int8_levels = np.concatenate([levels(sessions["int8"].run(None, {"image": x})[0], r)
                                              for x, r in zip(probes, reference)])
                phased_levels = np.concatenate([levels(sessions["phased"].run(None, {"image": x})[0], r)
                                                for x, r in zip(probes, reference)])
                print(f"| {name} | {size}² | {ms['plain']:.1f} | {ms['phased']:.1f} | {ms['int8']:.1f} ({kept}) | "
                      f"{ms['plain'] / ms['int8']:.2f}x | {int8_levels.mean():.2f} / "
                      f"{np.percentile(int8_levels, 99.9):.1f} | {phased_levels.max():.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
