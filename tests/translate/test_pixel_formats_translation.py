"""Translating data beyond 8-bit RGB: NIfTI volumes, inputs adapted to the model, ONNX
metadata, and checkpoints from before pixel formats."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    TINY_FORMATS,
    TINY_P2P,
    make_format_pairs,
    nifti_pairs,
)
from PIL import Image

from img2img.cli import main
from img2img.io.readers import list_items
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.translate.translator import Translator


def test_a_nifti_volume_goes_in_and_out_as_nifti_with_its_affine(tmp_path):
    import nibabel

    data = nifti_pairs(tmp_path / "data")
    assert len(list_items([data / "train" / "A" / "head.nii.gz"])) == 25  # one item per slice
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--max-steps", "2", "--netG", "resnet_6blocks",
                 "--preprocess", "none", "--range-a", "0,2000", "--range-b", "0,2000", *TINY_FORMATS]) == 0
    cfg = checkpoint_config(load_checkpoint(run / "checkpoints" / "latest.pt"))
    assert (cfg.model.in_channels, cfg.model.in_dtype, cfg.model.in_range) == (1, "int16", (0.0, 2000.0))
    source = data / "val" / "A" / "head.nii.gz"
    assert main(["translate", "--checkpoint", str(run / "checkpoints" / "latest.pt"), str(source),
                 str(tmp_path / "out")]) == 0
    out = nibabel.load(tmp_path / "out" / "head.nii.gz")
    original = nibabel.load(source)
    assert out.shape == original.shape and np.array_equal(out.affine, original.affine)
    assert out.get_data_dtype().name == "int16" and np.asarray(out.dataobj).std() > 0
    assert out.header["pixdim"].tolist() == original.header["pixdim"].tolist()


def test_translate_flags_are_checked_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["translate", "--checkpoint", "x.pt", str(tmp_path), str(tmp_path / "out"), "--batch-size", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "img2img translate: error: argument --batch-size: '0': must be an integer of at least 1"]


def test_a_16bit_image_given_to_an_8bit_model_is_rescaled_with_a_note(tmp_path, capsys):
    from img2img.log import log_to_console

    log_to_console()
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split in ("train",):
        (data / split).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(data / split / "0.png")
    main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY_P2P])
    translator = Translator.from_checkpoint(tmp_path / "run/checkpoints/latest.pt", device="cpu", engine="torch")
    wide = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32, 1) * 64
    narrow = np.rint(wide.astype(np.float32) / 65535 * 255).astype(np.uint8)
    out = translator.translate_pixels(wide)
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - translator.translate_pixels(narrow).astype(int)).max() <= 2
    assert "uint16 rescaled from 0..65535 to the model's 0..255" in capsys.readouterr().out


@pytest.mark.slow
def test_onnx_metadata_carries_the_channel_count_and_range(tmp_path):
    import onnx

    data = make_format_pairs(tmp_path / "data", "gray16")
    main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY_P2P])
    main(["export", str(tmp_path / "run/checkpoints/latest.pt"), str(tmp_path / "g.onnx"), "--format", "onnx"])
    meta = {p.key: p.value for p in onnx.load(tmp_path / "g.onnx").metadata_props}
    assert meta["img2img.input_pixels"] == "1 channel uint16 0..65535"
    assert meta["img2img.output_pixels"] == "1 channel uint16 0..65535"


def test_checkpoints_from_before_pixel_formats_are_8bit_rgb():
    from helpers import CHECKPOINT_FIXTURES as FIXTURES

    fixtures = sorted(FIXTURES.glob("*.pt"))
    assert len(fixtures) >= 2, f"the checkpoints of format 2b02544 are missing from {FIXTURES}"
    for path in fixtures:
        model = checkpoint_config(load_checkpoint(path)).model
        assert (model.in_dtype, model.in_range, model.out_range) == ("uint8", (0.0, 255.0), (0.0, 255.0)), path
