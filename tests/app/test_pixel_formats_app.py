"""The app on data beyond 8-bit RGB: 16-bit and multi-band files given back without loss,
whole and tiled."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    TINY_CYC,
    TINY_P2P,
    make_format_pairs,
    make_format_unpaired,
    smooth,
)
from PIL import Image

from img2img.cli import main
from img2img.io.readers import read_image
from img2img.translate.tiling import Tiling
from img2img.translate.translator import Translator


@pytest.fixture(scope="module")
def format_models(tmp_path_factory):
    """pix2pix and CycleGAN on one-channel 16-bit and on 4-band 16-bit data, in one folder."""
    import shutil

    root = tmp_path_factory.mktemp("format_models")
    (root / "models").mkdir()
    for method, maker, flags in (("pix2pix", make_format_pairs, TINY_P2P), ("cyclegan", make_format_unpaired, TINY_CYC)):
        for kind in ("gray16", "bands4"):
            name = f"{method}_{kind}"
            data = maker(root / name, kind)
            main(["train", "--data", str(data), "--out", str(root / f"run_{name}"), "--max-steps", "1", *flags])
            shutil.copy(root / f"run_{name}" / "checkpoints" / "latest.pt", root / "models" / f"{name}.pt")
    return root


@pytest.mark.slow
def test_the_app_takes_16bit_and_multiband_files_and_gives_them_back_without_loss(format_models, tmp_path):
    from gradio_client import Client, handle_file
    from helpers import launch

    app, url = launch(format_models / "models", tmp_path)
    try:
        client = Client(url, verbose=False)
        for name, source, channels in (("pix2pix_gray16", "val/A/0.png", 1), ("pix2pix_bands4", "val/A/0.tif", 4),
                                       ("cyclegan_gray16", "testA/0.png", 1), ("cyclegan_bands4", "testA/0.tif", 4)):
            source = format_models / name / source
            model = f"{name}.pt"
            _, shown_out, result, details = client.predict(handle_file(str(source)), model, "AtoB",
                                                                  api_name="/translate_file")
            pixels = read_image(result).array
            assert pixels.dtype == np.uint16 and pixels.shape == (40, 40, channels)
            expected = Translator.from_checkpoint(format_models / "models" / model, device="cpu").translate_pixels(source)
            assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 40
            assert Image.open(shown_out).mode == "RGB" and "written as" in details
        # A one-channel model takes a colour picture in the image tab, as its luminance.
        Image.fromarray(np.full((24, 40, 3), 128, np.uint8)).save(tmp_path / "colour.png")
        output, _ = client.predict(handle_file(str(tmp_path / "colour.png")),
                                      "pix2pix_gray16.pt", "AtoB",
                                      api_name="/translate")
        assert Image.open(output).size == (40, 24)
    finally:
        app.close()


def test_tiled_translation_keeps_the_models_pixel_format(format_models, tmp_path):
    translator = Translator.from_checkpoint(format_models / "models" / "pix2pix_gray16.pt", device="cpu",
                                            engine="torch")
    image = smooth(np.random.default_rng(3), 100, 90, 1, 65535).astype(np.uint16)
    tiled = translator.translate_pixels(image, tiling=Tiling(64, 16))
    whole = translator.translate_pixels(image, tiling=Tiling(0))
    assert tiled.dtype == np.uint16 and tiled.shape == (100, 90, 1)
    assert np.abs(tiled.astype(float) - whole).mean() < 0.02 * 65535
