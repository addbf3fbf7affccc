"""Models in safetensors: exported from a checkpoint, loaded back with no pickle, refused in one
line when incomplete or inconsistent."""
import json

import numpy as np
import pytest
import torch
from helpers import make_checkpoint, random_image
from safetensors.torch import load_file, save_file

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.translate.translator import Translator

UNET = dict(netG="unet_32", ngf=8)


def exported(tmp_path, method: str, **model):
    checkpoint = make_checkpoint(method, tmp_path / f"{method}.pt", model=model or None)
    folder = tmp_path / f"{method}_safetensors"
    assert main(["export", str(checkpoint), str(folder), "--format", "safetensors"]) == 0
    return checkpoint, folder


@pytest.mark.parametrize("method,model", [("pix2pix", UNET), ("cyclegan", {})])
def test_a_safetensors_export_translates_bit_for_bit_as_its_checkpoint(tmp_path, method, model):
    checkpoint, folder = exported(tmp_path, method, **model)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    images = [random_image(np.random.default_rng(i), 48, 32) for i in range(2)]
    original = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch", precision="fp32")
    for given in (folder, folder / "model.safetensors"):
        loaded = Translator.from_checkpoint(given, device="cpu", engine="torch", precision="fp32")
        assert loaded.directions == original.directions
        for direction in original.directions:
            for a, b in zip(original.translate_pixels(images, direction), loaded.translate_pixels(images, direction)):
                assert np.array_equal(a, b)


def test_the_config_json_rebuilds_the_model_and_the_tensors_are_named_by_network(tmp_path):
    _, folder = exported(tmp_path, "cyclegan")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["library"] == "img2img" and meta["config"]["method"] == "cyclegan"
    assert {name.split(".")[0] for name in load_file(folder / "model.safetensors")} == {"G_A", "G_B"}


def test_a_folder_without_its_config_or_weights_is_refused_naming_what_is_missing(tmp_path):
    _, folder = exported(tmp_path, "pix2pix", **UNET)
    (folder / "config.json").unlink()
    with pytest.raises(Img2ImgError, match=r"not an img2img safetensors model: no config.json$"):
        Translator.from_checkpoint(folder, device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Img2ImgError, match="no model.safetensors and no config.json"):
        Translator.from_checkpoint(empty, device="cpu")


def test_a_config_naming_an_unknown_network_is_refused_in_one_line(tmp_path):
    _, folder = exported(tmp_path, "pix2pix", **UNET)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["model"]["netG"] = "transformer_xl"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(Img2ImgError, match="transformer_xl") as refused:
        Translator.from_checkpoint(folder, device="cpu")
    assert "\n" not in str(refused.value)


def test_tensors_that_do_not_fit_the_config_are_refused_in_one_line(tmp_path):
    _, folder = exported(tmp_path, "pix2pix", **UNET)
    tensors = load_file(folder / "model.safetensors")
    name = next(n for n, t in tensors.items() if t.ndim == 4)
    tensors[name] = torch.zeros(1, 1, 1, 1)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(Img2ImgError, match=r"AtoB weights do not fit the unet_32 its config names \(ngf 8; first "
                                           r"difference at "):
        Translator.from_checkpoint(folder, device="cpu")


def test_a_broken_safetensors_file_is_refused_in_one_line(tmp_path):
    _, folder = exported(tmp_path, "pix2pix", **UNET)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(Img2ImgError, match="model.safetensors: not a readable safetensors file"):
        Translator.from_checkpoint(folder, device="cpu")


def test_a_config_that_asks_for_a_far_larger_network_is_refused_before_it_is_built(tmp_path):
    """ngf 100000 with an ngf-8 model's weights: refused from the shapes alone, on the meta
    device (a real build would need terabytes)."""
    import time

    _, folder = exported(tmp_path, "pix2pix", **UNET)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["model"]["ngf"] = 100000
    (folder / "config.json").write_text(json.dumps(meta))
    start = time.monotonic()
    with pytest.raises(Img2ImgError, match=r"weights do not fit the unet_32 its config names \(ngf 100000; first "):
        Translator.from_checkpoint(folder, device="cpu", engine="torch")
    assert time.monotonic() - start < 5
