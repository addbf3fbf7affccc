"""Shared fixtures: tiny generated datasets, never the shared ones."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX exports made for onnxruntime go to a temporary cache, not the user's."""
    import os

    os.environ["IMG2IMG_CACHE"] = str(tmp_path_factory.mktemp("img2img_cache"))


def random_image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth random colour blobs (learnable, unlike white noise)."""
    small = rng.integers(0, 256, size=(max(h // 8, 1), max(w // 8, 1), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


def make_paired(root: Path, n_train: int = 4, n_val: int = 2, size: int = 32, seed: int = 0) -> Path:
    """pix2pix layout: root/{train,val}/*.png, A|B side by side (B is A colour-inverted)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.asarray(random_image(rng, size, size))
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i}.png")
    return root


def make_unpaired(root: Path, n_a: int = 3, n_b: int = 4, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, n in (("trainA", n_a), ("trainB", n_b), ("testA", 2), ("testB", 2)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            random_image(rng, size, size).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture
def paired_dir(tmp_path: Path) -> Path:
    return make_paired(tmp_path / "paired")


@pytest.fixture
def unpaired_dir(tmp_path: Path) -> Path:
    return make_unpaired(tmp_path / "unpaired")


# Small, fast settings shared by CLI tests.
TINY_PIX2PIX = ["--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--size", "32", "--load-size", "36",
                "--num-workers", "0", "--log-every", "1", "--device", "cpu"]
TINY_CYCLEGAN = ["--model", "cyclegan", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32",
                 "--load-size", "36", "--num-workers", "0", "--log-every", "1", "--device", "cpu"]
