"""`make demo`: a real pix2pix run on a dataset the demo draws itself, installed for the app.

The task is outlines -> filled shapes, circles red and squares blue (a colour the outline
determines, so it can be learned), which a small U-Net picks up in 600 CPU steps: the whole
demo runs offline in about two minutes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..config import DataConfig, ModelConfig, TrainConfig
from ..files import atomic_write
from ..log import logger
from ..methods import new_run_config
from ..translate.batch import translate_files
from ..translate.translator import Translator
from . import Trainer

CIRCLE_COLOUR, SQUARE_COLOUR = (220, 60, 50), (40, 120, 220)


def draw_pair(rng: np.random.Generator, size: int) -> Image.Image:
    """One A|B image: A black outlines on white, B the same shapes filled (circles red, squares blue)."""
    a = Image.new("RGB", (size, size), "white")
    b = Image.new("RGB", (size, size), (245, 240, 230))
    da, db = ImageDraw.Draw(a), ImageDraw.Draw(b)
    for _ in range(rng.integers(2, 5)):
        r = int(rng.integers(size // 10, size // 4))
        cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
        box = (cx - r, cy - r, cx + r, cy + r)
        if rng.random() < 0.5:
            db.ellipse(box, fill=CIRCLE_COLOUR)
            da.ellipse(box, outline="black", width=2)
        else:
            db.rectangle(box, fill=SQUARE_COLOUR)
            da.rectangle(box, outline="black", width=2)
    pair = Image.new("RGB", (2 * size, size))
    pair.paste(a, (0, 0))
    pair.paste(b, (size, 0))
    return pair


def make_synthetic_pairs(root: Path, n_train: int = 64, n_val: int = 8, size: int = 128, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw_pair(rng, size).save(root / split / f"{i:03d}.png")
    return root


def run_demo(out: Path, steps: int = 600, device: str = "auto", install_to: Path | None = None) -> Path:
    """Train the demo model (unless `install_to` already holds it) and write example inputs.

    Returns the checkpoint's path.
    """
    examples = out / "examples"
    installed = install_to / "demo_shapes.pt" if install_to else None
    data = make_synthetic_pairs(out / "data")
    write_examples(data / "val", examples)
    if installed is not None and installed.is_file():
        logger.info(f"demo: using the existing model {installed} (delete it to retrain)")
        return installed
    cfg = new_run_config(
        "pix2pix",
        model=ModelConfig(netG="unet_128", ngf=16, ndf=16),
        data=DataConfig(root=str(data), load_size=128, size=128, batch_size=4, num_workers=0),
        train=TrainConfig(out=str(out / "run"), max_steps=steps, device=device, log_every=25, sample_every=100,
                          save_every=steps),
    )
    logger.info(f"demo: training pix2pix for {steps} steps on {data} (outlines -> red circles and blue squares)")
    checkpoint = Trainer.from_config(cfg).fit()
    translated = out / "translated"
    report = translate_files(Translator.from_checkpoint(checkpoint, device=device), examples, translated,
                             overwrite=True)
    logger.info(report.summary())
    logger.info(f"demo: sample grids (input | output | target) in {out / 'run' / 'samples'}")
    logger.info(f"demo: translations of the example inputs in {translated}; metrics in {out / 'run' / 'metrics.csv'}")
    if installed is None:
        return checkpoint
    installed.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(installed, lambda f: f.write(checkpoint.read_bytes()))
    logger.info(f"demo: model installed as {installed}")
    return installed


def write_examples(pairs: Path, examples: Path) -> None:
    """The A halves (outlines) of the validation pairs: inputs to try in the app."""
    examples.mkdir(parents=True, exist_ok=True)
    for path in sorted(pairs.glob("*.png")):
        pair = Image.open(path)
        pair.crop((0, 0, pair.width // 2, pair.height)).save(examples / path.name)
