"""Flicker and speed of video translation on a "drone flight": a slow pan across a mosaic of the
maps val aerial photos, translated by the bundled aerial -> map model.

    python benchmarks/video_flicker.py [--data ../shared/datasets/maps] [--frames 120] [--windows 1 4 8 16]

Makes the clip (H.264, 256x256 at 24 fps, a diagonal pan of 2 px a frame over a 3x3 mosaic of
286 px photos) in a temporary folder, then for each --temporal-statistics window N prints the
flicker (mean |frame t - frame t-1| of the output over the same figure for the input, from
`img2img translate`'s video report), the tone flicker (the same for each frame's mean level),
frames/s through the whole video path, and the mean
|output - per-frame output| (how much pooling changes the picture). Also times the network alone
on the same decoded frames (the target: the video path at 85% of it or more), and writes a
strip of frames (input | N=1 | the largest N) to benchmarks/figures/video_flicker.jpg.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from img2img.models.norm import FrameStatistics
from img2img.translate.translator import Translator
from img2img.translate.video import translate_video

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"


def aerial_mosaic(data: Path, grid: int = 3, side: int = 286) -> np.ndarray:
    files = sorted((data / "val").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    canvas = np.zeros((grid * side, grid * side, 3), np.uint8)
    for i, path in enumerate(files[: grid * grid]):
        with Image.open(path) as pair:
            aerial = pair.crop((0, 0, pair.width // 2, pair.height)).convert("RGB").resize((side, side), Image.BICUBIC)
        y, x = (i // grid) * side, (i % grid) * side
        canvas[y : y + side, x : x + side] = np.asarray(aerial)
    return canvas


def drone_flight(mosaic: np.ndarray, frames: int, size: int = 256, step: int = 2) -> list[np.ndarray]:
    """A window gliding diagonally across the mosaic, `step` px a frame."""
    limit = mosaic.shape[0] - size
    return [mosaic[min(i * step, limit) : min(i * step, limit) + size, min(i * step, limit) : min(i * step, limit) + size]
            for i in range(frames)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24) -> None:
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=Fraction(fps), options={"crf": "12"})
    stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    for i, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
    out.close()


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def tone_flicker(frames: list[np.ndarray]) -> float:
    """Mean |mean level of frame t - that of frame t-1|: the jumps of the whole frame's tone."""
    means = np.array([f.astype(float).mean() for f in frames])
    return float(np.abs(np.diff(means)).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "maps")
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--figure", type=Path, default=ROOT / "benchmarks" / "figures" / "video_flicker.jpg")
    args = parser.parse_args()
    translator = Translator.from_checkpoint(args.checkpoint, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "drone_flight.mp4"
        write_clip(clip, drone_flight(aerial_mosaic(args.data), args.frames))
        frames = decoded(clip)
        print(f"drone flight: {len(frames)} frames 256x256 at 24 fps; model {args.checkpoint.name} "
              f"({translator.cfg.model.netG}, {translator.cfg.model.norm} norm), engine {translator.engine}")
        start = time.perf_counter()
        translator.translate_frames(frames, batch_size=args.batch_size)
        network_fps = len(frames) / (time.perf_counter() - start)
        print(f"network alone on the decoded frames (N=1): {network_fps:.2f} frames/s")
        start = time.perf_counter()
        translator.translate_frames(frames, batch_size=args.batch_size, statistics=FrameStatistics(args.windows[-1]))
        print(f"network alone, pooled over {args.windows[-1]} frames (two PyTorch passes): "
              f"{len(frames) / (time.perf_counter() - start):.2f} frames/s")
        outputs = {}
        for window in args.windows:
            out = Path(tmp) / f"out_{window}.mp4"
            report = translate_video(translator, clip, out, batch_size=args.batch_size, temporal_statistics=window,
                                     show_bar=False)
            outputs[window] = decoded(out)
            fps = report.frames / report.seconds
            change = np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(outputs[window], outputs[args.windows[0]])])
            tone = tone_flicker(outputs[window]) / tone_flicker(frames)
            share = f" = {fps / network_fps:.0%} of the network alone" if window == 1 else ""
            print(f"N={window:>2}: flicker {report.flicker:.3f} of the input's, {fps:.2f} frames/s through the video "
                  f"path{share}, tone flicker {tone:.3f}, mean |output - N={args.windows[0]} output| {change:.2f} levels")
        picks = np.linspace(0, len(frames) - 1, 5).round().astype(int)
        rows = [np.concatenate([frames[i] for i in picks], axis=1)]
        rows += [np.concatenate([outputs[w][i] for i in picks], axis=1) for w in (args.windows[0], args.windows[-1])]
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(args.figure, quality=85)
        print(f"strip: frames {', '.join(map(str, picks))}; rows input, N={args.windows[0]}, N={args.windows[-1]} "
              f"-> {args.figure}")


if __name__ == "__main__":
    main()
