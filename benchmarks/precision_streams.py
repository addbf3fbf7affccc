"""Video and webcam frames/s at each precision (issue 53, "Where it matters").

    python benchmarks/precision_streams.py CHECKPOINT --frames DIR [--direction AtoB]

int8 calibrates on the checkpoint's validation split, which must be where it trained.

- video: the first --count images of DIR, resized to --side, as a 24 fps H.264 clip, translated
  by the app's video path (per-frame statistics, the default), decoding and encoding included;
- live: the Live tab's server path (`TranslationService.translate_frame`): a 640x480 frame
  scaled to --side px and translated, frames/s over --count frames.

The browser's own share of the Live tab is in benchmarks/app_live.py.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_flicker import write_clip  # noqa: E402

from img2img.io.readers import list_images  # noqa: E402
from img2img.service.translation import TranslationService  # noqa: E402
from img2img.translate.precision import bf16_is_native  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--frames", type=Path, required=True, help="folder of images of the source domain")
    parser.add_argument("--direction", default="AtoB")
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()
    precisions = ["fp32", "int8"] + (["bf16"] if bf16_is_native() else [])
    print("| precision | video frames/s | live frames/s |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = [np.asarray(Image.open(p).convert("RGB").resize((args.side, args.side), Image.BICUBIC))
                  for p in sorted(list_images(args.frames))[:args.count]]
        clip = work / "clip.mp4"
        write_clip(clip, images)
        webcam = np.asarray(Image.fromarray(images[0]).resize((640, 480), Image.BICUBIC))
        for precision in precisions:
            # The checkpoint's own folder is the model folder, so an int8 model cached beside it is reused.
            service = TranslationService(args.checkpoint.parent, work, device="cpu", precision=precision)
            service.load(args.checkpoint.name, args.direction)  # loading (and calibrating) is not timed
            with service.request_folder() as folder:
                start = time.perf_counter()
                _, video_line = service.translate_video(str(clip), args.checkpoint.name, args.direction, folder)
                video = len(images) / (time.perf_counter() - start)
            times = None
            start = time.perf_counter()
            for _ in range(args.count):
                _, rate_line, times = service.translate_frame(webcam, args.checkpoint.name, args.direction,
                                                              args.side, times)
            live = args.count / (time.perf_counter() - start)
            print(f"| {precision} | {video:.2f} | {live:.2f} |")
            print(f"  video: {video_line}\n  live: {rate_line}", file=sys.stderr)


if __name__ == "__main__":
    main()
