"""Training on data beyond 8-bit RGB: 16-bit, multi-band and float domains, rectangular and
whole images, and the checks on bad data and settings."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    TINY_CYC,
    TINY_FORMATS,
    TINY_P2P,
    assert_resume_is_bitwise,
    make_format_pairs,
    make_format_unpaired,
)
from PIL import Image

from img2img.cli import main
from img2img.config import DataConfig
from img2img.data.builders import build_datasets
from img2img.io.pixel_format import PixelFormat
from img2img.io.readers import read_image
from img2img.io.writers import write_image
from img2img.methods import METHODS, new_run_config
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.translate.translator import Translator


@pytest.mark.parametrize("method,kind", [("pix2pix", "gray16"), ("pix2pix", "bands4"), ("cyclegan", "gray16"),
                                         ("cyclegan", "bands4")])
@pytest.mark.slow
def test_a_model_trains_resumes_translates_and_exports_on_16bit_and_multiband_data(method, kind, tmp_path):
    paired = method == "pix2pix"
    data = (make_format_pairs if paired else make_format_unpaired)(tmp_path / "data", kind)
    flags = ["--data", str(data), *(TINY_P2P if paired else TINY_CYC)]
    straight = assert_resume_is_bitwise(flags, tmp_path, stop=2, end=4)
    channels = 1 if kind == "gray16" else 4
    model = checkpoint_config(straight).model
    assert (model.in_channels, model.out_channels, model.in_dtype, model.out_range) == (channels, channels, "uint16",
                                                                                        (0.0, 65535.0))
    checkpoint = tmp_path / "straight/checkpoints/latest.pt"
    source = next((data / ("val/A" if paired else "testA")).iterdir())
    assert main(["translate", "--checkpoint", str(checkpoint), str(source), str(tmp_path / "out")]) == 0
    result = read_image(tmp_path / "out" / source.name).array
    assert result.dtype == np.uint16 and result.shape == (40, 40, channels)
    assert main(["export", str(checkpoint), str(tmp_path / "g.onnx"), "--format", "onnx",
                 "--direction", "AtoB"]) == 0
    onnx_result = Translator.from_checkpoint(tmp_path / "g.onnx", device="cpu").translate_pixels(source)
    assert np.abs(onnx_result.astype(int) - result.astype(int)).max() <= 40  # of 65535: float rounding only


@pytest.mark.slow
def test_a_trained_one_channel_16bit_model_keeps_more_than_10000_levels(tmp_path):
    data = make_format_pairs(tmp_path / "data", "gray16")
    run = tmp_path / "run"
    main(["train", "--data", str(data), "--out", str(run), "--max-steps", "3", *TINY_P2P])
    write_image(tmp_path / "in" / "ramp.png", np.arange(65536, dtype=np.uint16).reshape(256, 256, 1))
    assert main(["translate", "--checkpoint", str(run / "checkpoints/latest.pt"), str(tmp_path / "in"),
                 str(tmp_path / "out")]) == 0
    out = read_image(tmp_path / "out" / "ramp.png").array
    assert out.dtype == np.uint16 and len(np.unique(out)) > 10_000


@pytest.mark.slow
def test_float_data_gets_an_auto_range_from_the_train_split_said_and_stored(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 1)):
        for side in ("A", "B"):
            (tmp_path / "data" / split / side).mkdir(parents=True)
        for i in range(count):
            a = rng.normal(100.0, 30.0, (32, 32, 1)).astype(np.float32)
            write_image(tmp_path / "data" / split / "A" / f"{i}.tif", a)
            write_image(tmp_path / "data" / split / "B" / f"{i}.npy", -a)
    main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY_P2P])
    said = capsys.readouterr().out
    model = checkpoint_config(load_checkpoint(tmp_path / "run/checkpoints/latest.pt")).model
    lo, hi = model.in_range
    assert model.in_dtype == "float32" and 0 < lo < 100 < hi < 200 and model.out_range[1] < 0
    assert f"domain A (A): 1 channel float32 {lo:g}..{hi:g} (auto" in said
    assert main(["translate", "--checkpoint", str(tmp_path / "run/checkpoints/latest.pt"),
                 str(tmp_path / "data/val/A/0.tif"), str(tmp_path / "out")]) == 0
    assert read_image(tmp_path / "out" / "0.tif").array.dtype == np.float32


def test_val_l1_and_psnr_are_logged_in_the_outputs_own_units(tmp_path):
    data = make_format_pairs(tmp_path / "data", "gray16")
    run = tmp_path / "run"
    main(["train", "--data", str(data), "--out", str(run), "--epochs", "1", "--epochs-decay", "0", "--fid-every", "1",
          "--fid-weights", str(tmp_path / "none.pth"), *TINY_P2P])
    import csv

    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("val_l1")]
    assert len(rows) == 1 and 100 < float(rows[0]["val_l1"]) < 65535 and 0 < float(rows[0]["val_psnr"]) < 60


@pytest.mark.parametrize("preprocess,size,expected", [
    ("resize_and_crop", "64x32", (32, 64)),
    ("crop", "64x32", (32, 64)),
    ("scale_width", "64x32", (64, 96)),  # width to the load width 96 (load 48 for a shorter side of 32), 2:3 kept
    ("scale_width_and_crop", "64x32", (32, 64)),
    ("none", "32", (64, 96)),  # 90x60 padded to multiples of 32
])
def test_size_wxh_and_every_preprocess_mode_on_rectangular_images(tmp_path, preprocess, size, expected):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for side in ("A", "B"):
            (tmp_path / split / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(tmp_path / split / side / "0.png")
    flags = ["--preprocess", preprocess, "--size", size, "--load-size", "48", "--netG", "unet_32", *TINY_FORMATS]
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--max-steps", "1", *flags]) == 0
    cfg = checkpoint_config(load_checkpoint(tmp_path / "run/checkpoints/latest.pt"))
    train, val = build_datasets(cfg, METHODS[cfg.method].dataset_kind)
    assert train[0]["A"].shape[1:] == expected and train[0]["B"].shape[1:] == expected
    assert val[0]["A"].shape[1:] == (expected if preprocess != "resize_and_crop" else (32, 64))


def test_whole_images_of_differing_sizes_need_batch_size_1(tmp_path, capsys):
    for i, (w, h) in enumerate([(64, 64), (96, 64)]):
        Image.fromarray(np.zeros((h, 2 * w, 3), np.uint8)).save((tmp_path / f"{i}.png"))
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--preprocess", "none",
               "--batch-size", "2", "--size", "32", "--netG", "unet_32", *TINY_FORMATS])
    assert rc == 2 and "needs one size; use --batch-size 1" in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [
    (["--batch-size", "0"], "error: --batch-size 0: must be a number of at least 1"),
    (["--size", "0"], "error: --size 0: must be a number of at least 1"),
    (["--lr", "-1"], "error: --lr -1.0: must be a number above 0"),
    (["--epochs", "0", "--epochs-decay", "0"], "error: --epochs 0 --epochs-decay 0: nothing to train; the two "
                                               "together must be at least 1"),
    (["--num-workers", "-2"], "error: --num-workers -2: must be a number of at least 0"),
    (["--range-a", "5,5"], "img2img train: error: argument --range-a: 5,5: LO must be less than HI, both finite"),
    (["--size", "64x"], "img2img train: error: argument --size: '64x': give N (square) or WxH, e.g. 512x256"),
])
def test_numeric_settings_are_checked_with_one_line_naming_the_flag(paired_dir, tmp_path, capsys, flags, message):
    try:
        rc = main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--netG", "unet_32",
                   "--device", "cpu", *flags])
    except SystemExit as e:  # argparse's own refusal of a value it cannot parse
        rc = e.code
    assert rc == 2 and capsys.readouterr().err.strip().splitlines() == [message]
    assert not (tmp_path / "run").exists()


def test_nan_and_mixed_channel_images_are_skipped_in_training_and_reported(tmp_path, capsys):
    data = make_format_pairs(tmp_path / "data", "gray16")
    write_image(data / "train" / "A" / "9.tif", np.zeros((40, 40, 3), np.uint16))
    write_image(data / "train" / "B" / "9.tif", np.zeros((40, 40, 1), np.uint16))
    np.save(data / "train" / "A" / "8.npy", np.full((40, 40), np.nan, np.float32))
    np.save(data / "train" / "B" / "8.npy", np.zeros((40, 40), np.float32))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "6", *TINY_P2P]) == 0
    text = capsys.readouterr()
    text = text.out + text.err
    assert "9.tif: has 3 channels; its domain has 1" in text
    assert "8.npy: holds 1600 NaN or infinite values" in text


def test_an_8bit_rgb_run_keeps_todays_default_formats(paired_dir, tmp_path):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY_P2P])
    model = checkpoint_config(load_checkpoint(tmp_path / "run/checkpoints/latest.pt")).model
    assert PixelFormat.of_model(model, "in") == PixelFormat() == PixelFormat.of_model(model, "out")
    assert new_run_config("pix2pix").data.preprocess == DataConfig().preprocess == "resize_and_crop"


def test_cut_trains_on_four_bands_with_rgb_sample_grids_and_translates(tmp_path):
    data = make_format_unpaired(tmp_path / "data", "bands4")
    run = tmp_path / "run"
    assert main(["train", "--model", "cut", "--data", str(data), "--out", str(run), "--max-steps", "2",
                 "--preview-channels", "3,2,1", *TINY_CYC[2:]]) == 0
    grid = Image.open(next((run / "samples").glob("*.png")))
    assert grid.mode == "RGB"
    assert main(["translate", "--checkpoint", str(run / "checkpoints/latest.pt"), str(data / "testA"),
                 str(tmp_path / "out")]) == 0
    assert read_image(tmp_path / "out" / "0.tif").array.shape == (40, 40, 4)
