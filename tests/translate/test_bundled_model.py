"""The model shipped in checkpoints/maps_aerial2map (see its README.md model card)."""

import numpy as np
from helpers import ROOT, random_image

from img2img.translate.catalog import discover_checkpoints, model_card_examples
from img2img.translate.translator import Translator

BUNDLED = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"


def test_bundled_model_translates_a_256px_image_on_cpu():
    translator = Translator.from_checkpoint(BUNDLED, device="cpu", engine="torch")  # ONNX: test_onnx.py
    out = translator.translate(random_image(np.random.default_rng(0), 256, 256))
    assert out.size == (256, 256)
    assert translator.cfg.model.netG == "unet_256" and translator.directions == ["AtoB"]


def test_bundled_model_keeps_any_input_size():
    out = Translator.from_checkpoint(BUNDLED, device="cpu", engine="torch").translate(random_image(np.random.default_rng(1), 300, 181))
    assert out.size == (300, 181)


def test_bundled_model_is_listed_first_with_its_examples(tmp_path):
    models, _ = discover_checkpoints(ROOT / "checkpoints")
    assert models[0].path == BUNDLED
    assert models[0].label == "maps_aerial2map: aerial photo → map"
    assert models[0].direction_label("AtoB") == "aerial photo → map"
    examples = model_card_examples(models[:1], tmp_path)
    assert len(examples) == 3 and all(p.stat().st_size > 0 for p in examples)


def test_bundled_files_stay_small():
    assert BUNDLED.stat().st_size <= 30e6
    samples = sorted((BUNDLED.parent / "samples").glob("sample_*.jpg"))
    assert len(samples) == 3 and all(p.stat().st_size < 200e3 for p in samples)


def test_the_app_card_of_the_bundled_model_shows_no_number_its_card_or_checkpoint_lacks():
    import re

    from img2img.persist.checkpoint import load_checkpoint
    from img2img.translate.catalog import describe_checkpoint

    info = describe_checkpoint(BUNDLED)
    facts = dict(info.facts)
    readme = (BUNDLED.parent / "README.md").read_text(encoding="utf-8")
    stored = str(load_checkpoint(BUNDLED, mmap=True)["config"]) + str(load_checkpoint(BUNDLED, mmap=True)["progress"])
    # The card's own validation row (its bold row), and its training command.
    assert "| **this model** | **0.06192** | **26.42 dB** | **0.6854** | **259.0** | **0.221** |" in readme
    assert [facts[f"val {k}"] for k in ("L1", "PSNR", "SSIM", "FID", "KID")] == [
        "0.06192", "26.42 dB", "0.6854", "259.0", "0.221"]
    assert facts["training command"].startswith("`img2img train --model pix2pix --recipe improved")
    for number in re.findall(r"\d+(?:\.\d+)?", info.card()):
        assert number in readme or number in stored, number
