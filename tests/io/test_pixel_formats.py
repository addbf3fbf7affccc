"""Data beyond 8-bit RGB: readers by format, the model's channels and ranges, lossless writing,
rectangular and whole images, and the checks on bad input and settings."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, assert_resume_is_bitwise
from PIL import Image

from img2img.cli import main
from img2img.config import DataConfig
from img2img.data.builders import build_datasets
from img2img.errors import ImageReadError, Img2ImgError
from img2img.io.pixel_format import PixelFormat, describe_preview, preview_rgb
from img2img.io.readers import list_items, read_image
from img2img.io.writers import write_image
from img2img.methods import METHODS, new_run_config
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.translate.tiling import Tiling
from img2img.translate.translator import Translator

TINY = ["--ngf", "8", "--ndf", "8", "--num-workers", "0", "--log-every", "1", "--device", "cpu"]
TINY_P2P = ["--netG", "unet_32", "--size", "32", "--load-size", "36", *TINY]
TINY_CYC = ["--model", "cyclegan", "--netG", "resnet_6blocks", "--size", "32", "--load-size", "36", *TINY]


def smooth(rng, h, w, channels, top) -> np.ndarray:
    """Smooth random fields over [0, top]: learnable, and with many distinct levels."""
    small = rng.random((max(h // 8, 1), max(w // 8, 1), channels)).astype(np.float32)
    planes = [np.asarray(Image.fromarray(small[..., c], "F").resize((w, h), Image.BILINEAR)) for c in range(channels)]
    return np.stack(planes, axis=2) * top


def make_format_pairs(root: Path, kind: str, n: int = 4, size: int = 40, seed: int = 0) -> Path:
    """pix2pix A/ and B/ folders: "gray16" (16-bit one-channel PNGs) or "bands4" (4-band 16-bit TIFFs)."""
    rng = np.random.default_rng(seed)
    suffix, channels = {"gray16": (".png", 1), "bands4": (".tif", 4)}[kind]
    for split, count in (("train", n), ("val", 2)):
        for side in ("A", "B"):
            (root / split / side).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = smooth(rng, size, size, channels, 65535).astype(np.uint16)
            write_image(root / split / "A" / f"{i}{suffix}", a)
            write_image(root / split / "B" / f"{i}{suffix}", (65535 - a).astype(np.uint16))
    return root


def make_format_unpaired(root: Path, kind: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    suffix, channels = {"gray16": (".png", 1), "bands4": (".tif", 4)}[kind]
    for name, count in (("trainA", 3), ("trainB", 4), ("testA", 2), ("testB", 2)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_image(root / name / f"{i}{suffix}", smooth(rng, 40, 40, channels, 65535).astype(np.uint16))
    return root


def test_a_16bit_ramp_round_trips_exactly_through_read_tensor_and_write(tmp_path):
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1)
    fmt = PixelFormat(1, "uint16", 0, 65535)
    for name in ("ramp.png", "ramp.tif", "ramp.npy"):
        write_image(tmp_path / name, ramp)
        pixels = read_image(tmp_path / name)
        assert pixels.array.dtype == np.uint16 and pixels.array.shape == (256, 256, 1)
        back = fmt.decode_tensor(fmt.encode(pixels.array))
        assert np.array_equal(back, ramp) and len(np.unique(back)) == 65536
        write_image(tmp_path / f"again_{name}", back)
        assert np.array_equal(read_image(tmp_path / f"again_{name}").array, ramp)


def test_8bit_mapping_is_bit_for_bit_the_old_one():
    pixels = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    old = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    assert torch.equal(PixelFormat().encode(pixels), old)
    y = torch.randn(3, 9, 7)
    old_back = y.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(PixelFormat().decode_tensor(y), old_back)


def test_readers_return_channels_last_at_the_files_dtype(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    bands = rng.integers(0, 4096, (13, 20, 30), dtype=np.uint16)  # bands as planes, as satellite stacks store them
    tifffile.imwrite(tmp_path / "planes.tif", bands)
    assert np.array_equal(read_image(tmp_path / "planes.tif").array, np.moveaxis(bands, 0, -1))
    floats = rng.normal(size=(20, 30, 2)).astype(np.float32)
    write_image(tmp_path / "f.tif", floats)
    assert np.array_equal(read_image(tmp_path / "f.tif").array, floats)
    for array in (floats[..., 0], rng.integers(-1000, 1000, (5, 6, 3)).astype(np.int32)):
        np.save(tmp_path / "a.npy", array)
        got = read_image(tmp_path / "a.npy").array
        assert np.array_equal(got, array.reshape(*array.shape[:2], -1)) and got.dtype == array.dtype
    Image.fromarray(rng.integers(0, 256, (8, 9), dtype=np.uint8)).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png").array.shape == (8, 9, 1)
    rgb16 = rng.integers(0, 65536, (8, 9, 3), dtype=np.uint16)
    write_image(tmp_path / "rgb16.png", rgb16)
    assert np.array_equal(read_image(tmp_path / "rgb16.png").array, rgb16)


def test_the_pydicom_ct_slice_reads_in_hounsfield_units():
    import pydicom
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(path)
    pixels = read_image(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert pixels.source_dtype == "int16" and pixels.array.shape == (128, 128, 1)
    assert np.array_equal(pixels.array[..., 0], hu) and pixels.array.min() < -800  # air is about -1000 HU
    assert np.array_equal(read_image(get_testdata_file("MR_small.dcm")).array[..., 0],
                          pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array)


def nifti_pairs(root: Path) -> Path:
    """A/ the nibabel test volume (33 x 41 x 25 int16), B/ its negative, in train and val."""
    import nibabel
    from nibabel.testing import data_path

    image = nibabel.load(Path(data_path) / "anatomical.nii")
    volume = np.asarray(image.dataobj).astype(np.int16)
    for split in ("train", "val"):
        for side, data in (("A", volume), ("B", (volume.max() - volume).astype(np.int16))):
            (root / split / side).mkdir(parents=True, exist_ok=True)
            nibabel.save(nibabel.Nifti1Image(data, image.affine, image.header), root / split / side / "head.nii.gz")
    return root


def test_a_nifti_volume_goes_in_and_out_as_nifti_with_its_affine(tmp_path):
    import nibabel

    data = nifti_pairs(tmp_path / "data")
    assert len(list_items([data / "train" / "A" / "head.nii.gz"])) == 25  # one item per slice
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--max-steps", "2", "--netG", "resnet_6blocks",
                 "--preprocess", "none", "--range-a", "0,2000", "--range-b", "0,2000", *TINY]) == 0
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


def test_the_preview_rule_shows_grey_and_chosen_channels_and_fid_rows_say_which():
    x = torch.linspace(-1, 1, 5 * 4 * 4).reshape(1, 5, 4, 4)
    assert torch.equal(preview_rgb(x[:, :1]), x[:, :1].expand(-1, 3, -1, -1))
    assert torch.equal(preview_rgb(x), x[:, :3]) and torch.equal(preview_rgb(x, (4, 2, 0)), x[:, [4, 2, 0]])
    assert describe_preview(1) == "grey" and describe_preview(3) == "rgb"
    assert describe_preview(5) == "channels 0,1,2" and describe_preview(5, (3,)) == "grey of channel 3"


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
    flags = ["--preprocess", preprocess, "--size", size, "--load-size", "48", "--netG", "unet_32", *TINY]
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--max-steps", "1", *flags]) == 0
    cfg = checkpoint_config(load_checkpoint(tmp_path / "run/checkpoints/latest.pt"))
    train, val = build_datasets(cfg, METHODS[cfg.method].dataset_kind)
    assert train[0]["A"].shape[1:] == expected and train[0]["B"].shape[1:] == expected
    assert val[0]["A"].shape[1:] == (expected if preprocess != "resize_and_crop" else (32, 64))


def test_whole_images_of_differing_sizes_need_batch_size_1(tmp_path, capsys):
    for i, (w, h) in enumerate([(64, 64), (96, 64)]):
        Image.fromarray(np.zeros((h, 2 * w, 3), np.uint8)).save((tmp_path / f"{i}.png"))
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--preprocess", "none",
               "--batch-size", "2", "--size", "32", "--netG", "unet_32", *TINY])
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


def test_translate_flags_are_checked_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["translate", "--checkpoint", "x.pt", str(tmp_path), str(tmp_path / "out"), "--batch-size", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "img2img translate: error: argument --batch-size: '0': must be an integer of at least 1"]


def test_range_lo_not_below_hi_is_refused_in_one_line():
    from img2img.config import parse_range

    with pytest.raises(Img2ImgError, match="--range-a 3071,-1024: LO must be less than HI"):
        parse_range("3071,-1024", "--range-a")
    assert parse_range("-1024,3071", "--range-a") == (-1024.0, 3071.0)


def test_bad_inputs_are_refused_in_one_line_naming_the_file(tmp_path):
    import nibabel
    import pydicom
    from pydicom.data import get_testdata_file

    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]], np.float32))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "empty.dcm")
    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 4, 3), np.int16), np.eye(4)), tmp_path / "series.nii.gz")
    from img2img.io.pixel_format import check_finite

    with pytest.raises(Img2ImgError, match="nan.npy: holds 1 NaN or infinite values"):
        check_finite(read_image(tmp_path / "nan.npy").array, str(tmp_path / "nan.npy"))
    with pytest.raises(ImageReadError, match="empty.dcm: DICOM without pixel data"):
        read_image(tmp_path / "empty.dcm")
    with pytest.raises(ImageReadError, match=r"series.nii.gz: 4D NIfTI of shape \(4, 4, 4, 3\)"):
        list_items([tmp_path / "series.nii.gz"])


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


def test_datasets_combine_keeps_16bit_pairs(tmp_path):
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 65536, (20, 30, 1), dtype=np.uint16) for _ in range(2))
    write_image(tmp_path / "a" / "x.png", a)
    write_image(tmp_path / "b" / "x.tif", b)
    assert main(["datasets", "combine", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                 "--output", str(tmp_path / "pairs")]) == 0
    assert np.array_equal(read_image(tmp_path / "pairs" / "x.png").array, np.concatenate([a, b], axis=1))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_written_files_get_the_permissions_the_umask_gives(tmp_path):
    from img2img.files import atomic_write_text
    from img2img.persist.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "metrics.csv", "step\n")
        write_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8))
        write_image(tmp_path / "out.tif", np.zeros((4, 4, 1), np.uint16))
        save_checkpoint(tmp_path / "c.pt", {"config": {}})
    finally:
        os.umask(old)
    for name in ("metrics.csv", "out.png", "out.tif", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_an_8bit_rgb_run_keeps_todays_default_formats(paired_dir, tmp_path):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "1", *TINY_P2P])
    model = checkpoint_config(load_checkpoint(tmp_path / "run/checkpoints/latest.pt")).model
    assert PixelFormat.of_model(model, "in") == PixelFormat() == PixelFormat.of_model(model, "out")
    assert new_run_config("pix2pix").data.preprocess == DataConfig().preprocess == "resize_and_crop"


@pytest.mark.slow
def test_the_medical_images_sequence_of_the_docs_runs_as_written(tmp_path):
    import subprocess

    readme = (ROOT / "docs" / "data.md").read_text()
    block = readme.split("<!-- medical-example -->\n```bash\n")[1].split("```\n<!-- /medical-example -->")[0]
    # As written but for the training's length: two steps show the commands work together.
    length = "--epochs 5 --epochs-decay 5"
    assert block.count(length) == 1
    block = block.replace(length, "--max-steps 2")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "domain A (A): 1 channel int16 -1024..3071 (from --range-a)" in done.stdout
    assert read_image(tmp_path / "ct_out" / "slice_000.tif").array.dtype == np.int16
    import nibabel

    assert nibabel.load(tmp_path / "ct_out" / "volume.nii.gz").shape == (128, 128, 8)


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


def test_checkpoints_from_before_pixel_formats_are_8bit_rgb():
    from helpers import CHECKPOINT_FIXTURES as FIXTURES

    for path in sorted(FIXTURES.glob("*.pt")):
        model = checkpoint_config(load_checkpoint(path)).model
        assert (model.in_dtype, model.in_range, model.out_range) == ("uint8", (0.0, 255.0), (0.0, 255.0)), path


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
