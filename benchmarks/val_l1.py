"""Validation L1 of a pix2pix checkpoint, and of the same model untrained, on the val split.

L1 is the mean absolute difference between output and target in the network's [-1, 1] range
(the training loss's G_L1), on val images resized to the checkpoint's training size.

    python benchmarks/val_l1.py runs/maps128/checkpoints/latest.pt [--data DIR] [--device cpu]
"""
from __future__ import annotations

import argparse
import contextlib
import math

import torch
from torch.utils.data import DataLoader

from img2img.data import build_val_dataset, collate_skipping_errors
from img2img.methods import build_method
from img2img.models.norm import per_image_batch_norm
from img2img.training import checkpoint_config, load_checkpoint, resolve_device, seed_everything


@torch.no_grad()
def mean_l1(generator: torch.nn.Module, loader: DataLoader, device: torch.device, batch_norm: str) -> tuple[float, float]:
    """(L1, PSNR) with BatchNorm using each image's statistics ("image") or the running ones."""
    generator.eval()
    total, count, mse = 0.0, 0, 0.0
    for batch in loader:
        with per_image_batch_norm(generator) if batch_norm == "image" else contextlib.nullcontext():
            fake = generator(batch["A"].to(device)).float().cpu()
        total += (fake - batch["B"]).abs().mean(dim=(1, 2, 3)).sum().item()
        mse += ((fake - batch["B"]) / 2).pow(2).mean(dim=(1, 2, 3)).sum().item()  # in [0, 1] units
        count += len(fake)
    return total / count, 10 * math.log10(1 / (mse / count))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--data", help="dataset root (default: the one the checkpoint trained on)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    cfg = checkpoint_config(state)
    if args.data:
        cfg.data.root = args.data
    val = build_val_dataset(cfg)
    if val is None:
        raise SystemExit(f"{cfg.data.root}: no val/ or test/ split")
    loader = DataLoader(val, batch_size=8, collate_fn=collate_skipping_errors)
    # The untrained model: the same seeded initialisation the run started from.
    seed_everything(cfg.train.seed)
    method = build_method(cfg.model, cfg.train, device)
    g = method.generator("AtoB")
    before = {mode: mean_l1(g, loader, device, mode) for mode in ("image", "running")}
    method.load_state_dict(state["method"], networks_only=True)
    after = {mode: mean_l1(g, loader, device, mode) for mode in ("image", "running")}
    print(f"val images: {len(val)} from {cfg.data.root} at {cfg.data.size}px, step {state['progress']['step']}")
    for mode in ("image", "running"):
        print(f"batch norm statistics: {mode}")
        print(f"  untrained: L1 {before[mode][0]:.4f}  PSNR {before[mode][1]:.2f} dB")
        print(f"  trained:   L1 {after[mode][0]:.4f}  PSNR {after[mode][1]:.2f} dB")


if __name__ == "__main__":
    main()
