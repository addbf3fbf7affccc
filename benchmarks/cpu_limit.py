"""This CPU's limit for translation (issue 53, "Know the limit"): the peak of a large matrix
product and of a 3x3 convolution like the generators', in fp32, bf16 and int8, in torch and in
onnxruntime; then each generator's achieved GFLOP/s at 256² and 1024² as a fraction of the peak
of its precision.

    python benchmarks/cpu_limit.py [--seconds 3] [--sizes 256 1024]

Each figure is the best of repeated runs over at least `--seconds`, batch 1, torch's default
thread count. FLOPs count a multiply-add as two (torch's FlopCounterMode for the generators).
int8 generators are quantised as `--precision int8` does (img2img.translate.precision), here
calibrated on random images: their speed, not their quality (benchmarks/precision.py).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from img2img.config import RunConfig
from img2img.methods import METHODS, new_run_config
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
from img2img.translate.onnx_graph import OnnxGenerator, export_generator
from img2img.translate.precision import quantize_int8

BUNDLED = Path(__file__).resolve().parents[1] / "checkpoints" / "maps_aerial2map" / "model.pt"


def rate(fn, seconds: float) -> float:
    """Calls per second: the best second-long stretch after one warm-up call."""
    fn()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < max(seconds / 4, 0.2):
            fn()
            calls += 1
        best = max(best, calls / (time.perf_counter() - start))
    return best


def ort_session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def onnx_model(nodes, inputs, outputs, initializers):
    from onnx import helper

    graph = helper.make_graph(nodes, "peak", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def peaks(seconds: float, n: int = 1024, channels: int = 128, side: int = 64) -> dict[str, float]:
    """GFLOP/s of an n x n matrix product and of a 3x3 convolution (channels in and out, side²)."""
    from onnx import TensorProto, helper, numpy_helper

    mm_flops, conv_flops = 2 * n**3, 2 * 9 * channels * channels * side * side
    a, b = torch.randn(n, n), torch.randn(n, n)
    x, w = torch.randn(1, channels, side, side), torch.randn(channels, channels, 3, 3)
    found = {
        "matmul torch fp32": mm_flops * rate(lambda: a @ b, seconds),
        "matmul torch bf16": mm_flops * rate(lambda ab=a.bfloat16(), bb=b.bfloat16(): ab @ bb, seconds),
        "conv3x3 torch fp32": conv_flops * rate(lambda: torch.nn.functional.conv2d(x, w, padding=1), seconds),
        "conv3x3 torch bf16": conv_flops * rate(
            lambda xb=x.bfloat16(), wb=w.bfloat16(): torch.nn.functional.conv2d(xb, wb, padding=1), seconds),
    }
    fp32 = helper.make_tensor_value_info
    mm = onnx_model([helper.make_node("MatMul", ["A", "B"], ["Y"])], [fp32("A", TensorProto.FLOAT, [n, n])],
                    [fp32("Y", TensorProto.FLOAT, [n, n])], [numpy_helper.from_array(b.numpy(), "B")])
    session, feed = ort_session(mm), {"A": a.numpy()}
    found["matmul onnxruntime fp32"] = mm_flops * rate(lambda: session.run(None, feed), seconds)
    conv = onnx_model([helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])],
                      [fp32("X", TensorProto.FLOAT, [1, channels, side, side])],
                      [fp32("Y", TensorProto.FLOAT, [1, channels, side, side])], [numpy_helper.from_array(w.numpy(), "W")])
    conv_session, conv_feed = ort_session(conv), {"X": x.numpy()}
    found["conv3x3 onnxruntime fp32"] = conv_flops * rate(lambda: conv_session.run(None, conv_feed), seconds)
    # int8: onnxruntime's QLinear kernels (u8 activations, s8 weights, as its static quantisation makes).
    rng = np.random.default_rng(0)
    scale = [numpy_helper.from_array(np.array(0.05, np.float32), name) for name in ("sa", "sb", "sy")]
    zero_u8 = [numpy_helper.from_array(np.array(128, np.uint8), name) for name in ("za", "zy")]
    zero_s8 = numpy_helper.from_array(np.array(0, np.int8), "zb")
    b8 = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "B")
    qmm = onnx_model([helper.make_node("QLinearMatMul", ["A", "sa", "za", "B", "sb", "zb", "sy", "zy"], ["Y"])],
                     [fp32("A", TensorProto.UINT8, [n, n])], [fp32("Y", TensorProto.UINT8, [n, n])],
                     [b8, *scale, *zero_u8, zero_s8])
    qmm_session, qmm_feed = ort_session(qmm), {"A": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    found["matmul onnxruntime int8"] = mm_flops * rate(lambda: qmm_session.run(None, qmm_feed), seconds)
    w8 = numpy_helper.from_array(rng.integers(-127, 128, (channels, channels, 3, 3), dtype=np.int8), "B")
    qconv = onnx_model([helper.make_node("QLinearConv", ["X", "sa", "za", "B", "sb", "zb", "sy", "zy"], ["Y"],
                                         pads=[1, 1, 1, 1])],
                       [fp32("X", TensorProto.UINT8, [1, channels, side, side])],
                       [fp32("Y", TensorProto.UINT8, [1, channels, side, side])], [w8, *scale, *zero_u8, zero_s8])
    qconv_session = ort_session(qconv)
    qconv_feed = {"X": rng.integers(0, 256, (1, channels, side, side), dtype=np.uint8)}
    found["conv3x3 onnxruntime int8"] = conv_flops * rate(lambda: qconv_session.run(None, qconv_feed), seconds)
    return {k: v / 1e9 for k, v in found.items()}


def generators() -> dict[str, tuple[RunConfig, torch.nn.Module]]:
    state = load_checkpoint(BUNDLED)
    found = {"bundled U-Net, ngf 32": (checkpoint_config(state), load_generators(state)["AtoB"])}
    torch.manual_seed(0)
    cfg = new_run_config("pix2pix")
    cfg.model.netG = "unet_256"  # ngf 64
    found["U-Net, ngf 64 (the paper's)"] = (cfg, METHODS["pix2pix"].build_generator(cfg.model, "AtoB", "image"))
    cfg = new_run_config("cyclegan")  # resnet_9blocks, ngf 64: every CycleGAN and CUT model
    found["ResNet, 9 blocks, ngf 64"] = (cfg, METHODS["cyclegan"].build_generator(cfg.model, "AtoB", "image"))
    return found


def forward_flops(net: torch.nn.Module, side: int) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, side, side))
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU kernels "
          f"{torch.backends.cpu.get_cpu_capability()}")
    peak = peaks(args.seconds)
    print("\n| kernel | GFLOP/s |\n|---|---|")
    for name, value in peak.items():
        print(f"| {name} | {value:.1f} |")
    best = {p: max(v for k, v in peak.items() if k.endswith(p)) for p in ("fp32", "bf16", "int8")}
    print("\n| generator | px | GFLOP per image | precision, engine | img/s | GFLOP/s | of that precision's peak |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cfg, net) in generators().items():
            net = net.eval()
            fp32_file = export_generator(net, cfg, "AtoB", Path(tmp) / f"{len(name)}.onnx")
            onnx = OnnxGenerator(fp32_file, torch.device("cpu"))
            calibration = [np.random.default_rng(i).uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32) for i in range(8)]
            int8 = OnnxGenerator(quantize_int8(fp32_file, Path(tmp) / f"{len(name)}.int8.onnx", calibration, {
                k: v for k, v in onnx.session.get_modelmeta().custom_metadata_map.items()}), torch.device("cpu"))
            for side in args.sizes:
                flops = forward_flops(net, side) / 1e9
                x = torch.randn(1, 3, side, side)
                seconds = args.seconds if side <= 256 else 2 * args.seconds

                def bf16() -> None:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        net(x)

                with torch.no_grad():
                    runs = {"fp32, torch": rate(lambda: net(x), seconds),
                            "fp32, onnxruntime": rate(lambda: onnx(x), seconds),
                            "int8, onnxruntime": rate(lambda: int8(x), seconds)}
                    if best["bf16"] >= best["fp32"] / 4:  # else minutes per image: not a candidate here
                        runs["bf16, torch autocast"] = rate(bf16, seconds)
                for how, images in runs.items():
                    achieved = flops * images
                    print(f"| {name} | {side} | {flops:.1f} | {how} | {images:.2f} | {achieved:.1f} | "
                          f"{100 * achieved / best[how[:4]]:.0f}% |")
    if best["bf16"] < best["fp32"] / 4:
        print(f"\nbf16 generators not run: bf16's peak here is {100 * best['bf16'] / best['fp32']:.1f}% of fp32's "
              f"({torch.backends.cpu.get_cpu_capability()} kernels)")
    print(f"\npeaks used: fp32 {best['fp32']:.1f}, bf16 {best['bf16']:.1f}, int8 {best['int8']:.1f} GFLOP/s "
          "(int8: operations per second, a multiply-add as two)")


if __name__ == "__main__":
    main()
