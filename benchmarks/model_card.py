"""Numbers and samples for a pix2pix model card: val L1, PSNR, SSIM, FID and KID of a checkpoint
and of the same model untrained, and sample triplets (input | output | target) as small JPEGs.
FID/KID compare the outputs with the val targets at the training size (pytorch-fid protocol;
the weights resolve as in `img2img fid`; --no-fid skips them).

    pip install -e '.[bench]'     # scikit-image, for SSIM
    python benchmarks/model_card.py CHECKPOINT --data ../shared/datasets/maps [--samples-to DIR]

Images are the val split resized to the model's training size with PIL's bicubic filter, as the
canonical test does, whatever filter the model trained with (--resize area: cv2's INTER_AREA, the
filter of runs from before checkpoint format 3), so that two models' cards score the same pixels.
Translation goes through Translator in fp32 (dropout off; BatchNorm statistics per image by
default, as in the app, or the running ones with --batch-norm running).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from img2img.config import RESIZE_FILTERS
from img2img.data.builders import build_val_dataset
from img2img.device import seed_everything
from img2img.io.readers import to_tensor, to_uint8
from img2img.methods import METHODS
from img2img.metrics import InceptionFeatures, feature_statistics, frechet_distance, kid
from img2img.models import init_weights
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.translate.translator import BATCH_NORM_MODES, Translator

SAMPLE_INDICES = (3, 42, 77)


def scores(translator: Translator, val) -> tuple[float, float, float, list[np.ndarray]]:
    l1, psnr, ssim, outputs = [], [], [], []
    for i in range(len(val)):
        item = val[i]
        fake = translator.translate_tensor(item["A"][None])[0]
        l1.append((fake - item["B"]).abs().mean().item())
        out, target = to_uint8(fake), to_uint8(item["B"])
        mse = np.mean((out.astype(float) - target.astype(float)) ** 2)
        psnr.append(10 * math.log10(255**2 / max(mse, 1e-10)))
        ssim.append(structural_similarity(out, target, channel_axis=2, data_range=255))
        outputs.append(out)
    return float(np.mean(l1)), float(np.mean(psnr)), float(np.mean(ssim)), outputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--data", help="dataset root (default: the one in the checkpoint)")
    parser.add_argument("--samples-to", help="folder for sample_N.jpg triplets")
    parser.add_argument("--batch-norm", default="image", choices=BATCH_NORM_MODES,
                        help="BatchNorm statistics at inference, as Translator's option")
    parser.add_argument("--resize", default="bicubic", choices=RESIZE_FILTERS,
                        help="filter resizing the val images to the model's size (default: PIL bicubic)")
    parser.add_argument("--fid", action=argparse.BooleanOptionalAction, default=True, help="also FID and KID")
    args = parser.parse_args()
    state = load_checkpoint(args.checkpoint)
    cfg = checkpoint_config(state)
    if args.data:
        cfg.data.root = args.data
    cfg.data.resize = args.resize
    val = build_val_dataset(cfg, METHODS[cfg.method].dataset_kind)
    # fp32 explicitly: "auto" may choose int8 or bf16 on a CPU where they are faster, and a card's
    # scores are the model's, not a serving choice's.
    trained = Translator.from_checkpoint(args.checkpoint, device="cpu", batch_norm=args.batch_norm, engine="torch",
                                         precision="fp32")
    seed_everything(cfg.train.seed)  # the initialisation the run started from
    # Built and initialised as the run's G was (it is the first network a method builds).
    untrained_g = init_weights(METHODS[cfg.method].build_generator(cfg.model, "AtoB", args.batch_norm))
    untrained = Translator(cfg, {"AtoB": untrained_g}, torch.device("cpu"))
    print(f"val: {len(val)} images from {cfg.data.root} at {cfg.data.size}px; step {state['progress']['step']}; "
          f"{args.resize} resize; batch norm statistics: {args.batch_norm}")
    extractor = InceptionFeatures(device="cpu") if args.fid else None
    if extractor is not None:
        print(f"Inception weights: {extractor.source.label}")
        real = extractor.from_tensors(torch.stack([val[i]["B"] for i in range(len(val))]))
    results = {}
    for name, translator in (("untrained", untrained), ("trained", trained)):
        l1, psnr, ssim, outputs = scores(translator, val)
        results[name] = outputs
        line = f"{name:9s}  L1 {l1:.5f}  PSNR {psnr:.2f} dB  SSIM {ssim:.4f}"
        if extractor is not None:
            fake = extractor.from_tensors(torch.stack([to_tensor(o) for o in outputs]))
            kid_mean, kid_std = kid(fake, real)
            line += (f"  FID {frechet_distance(*feature_statistics(fake), *feature_statistics(real)):.2f}"
                     f"  KID {kid_mean:.4f} ± {kid_std:.4f}")
        print(line)
    if args.samples_to:
        folder = Path(args.samples_to)
        folder.mkdir(parents=True, exist_ok=True)
        for n, i in enumerate(SAMPLE_INDICES, 1):
            item = val[i]
            row = np.concatenate([to_uint8(item["A"]), results["trained"][i], to_uint8(item["B"])], axis=1)
            path = folder / f"sample_{n}.jpg"
            Image.fromarray(row).save(path, quality=85)
            print(f"{path}: {val.pairs[i][0].path.name}, {path.stat().st_size / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
