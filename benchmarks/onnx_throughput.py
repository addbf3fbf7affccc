"""CPU translation throughput, PyTorch eager against onnxruntime, and how closely the ONNX
exports agree with PyTorch, for the bundled pix2pix model and the papers' CycleGAN/CUT generators.

    python benchmarks/onnx_throughput.py [--sizes 256 1024] [--seconds 10]

Generators other than the bundled model have random weights (speed and agreement do not depend
on training). Each figure is images/s at batch 1 over at least `--seconds` after a warm-up run,
with torch's default thread count (all cores).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from img2img.config import RunConfig
from img2img.methods import METHODS, new_run_config
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
from img2img.translate.onnx_graph import OnnxGenerator, export_generator

BUNDLED = Path(__file__).resolve().parents[1] / "checkpoints" / "maps_aerial2map" / "model.pt"


def generators() -> dict[str, tuple[RunConfig, torch.nn.Module]]:
    state = load_checkpoint(BUNDLED)
    found = {"pix2pix (bundled maps_aerial2map, unet_256 ngf 32)": (checkpoint_config(state), load_generators(state)["AtoB"])}
    for method in ("cyclegan", "cut"):
        torch.manual_seed(0)
        cfg = new_run_config(method)
        net = METHODS[method].build_generator(cfg.model, "AtoB", "image")
        found[f"{method} ({cfg.model.netG} ngf {cfg.model.ngf}{', antialias' if cfg.model.antialias else ''})"] = (cfg, net.eval())
    return found


def images_per_second(run, x: torch.Tensor, seconds: float) -> float:
    run(x)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2:
        run(x)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| generator | px | torch eager img/s | onnxruntime img/s | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cfg, net) in generators().items():
            graph = OnnxGenerator(export_generator(net, cfg, "AtoB", Path(tmp) / "g.onnx"), torch.device("cpu"))
            for size in args.sizes:
                x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
                with torch.no_grad():
                    eager = images_per_second(net, x, args.seconds)
                    diff = (graph(x) - net(x)).abs().max().item()
                ort = images_per_second(graph, x, args.seconds)
                print(f"| {name} | {size} | {eager:.2f} | {ort:.2f} | {ort / eager:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
