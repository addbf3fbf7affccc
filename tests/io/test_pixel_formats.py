"""Pixels beyond 8-bit RGB at the io layer: readers by format, the mapping onto [-1, 1],
lossless writing, previews, and refusals of bad files and ranges."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from img2img.errors import ImageReadError, Img2ImgError
from img2img.io.pixel_format import PixelFormat, describe_preview, preview_rgb
from img2img.io.readers import list_items, read_image
from img2img.io.writers import write_image


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


def test_the_preview_rule_shows_grey_and_chosen_channels_and_fid_rows_say_which():
    x = torch.linspace(-1, 1, 5 * 4 * 4).reshape(1, 5, 4, 4)
    assert torch.equal(preview_rgb(x[:, :1]), x[:, :1].expand(-1, 3, -1, -1))
    assert torch.equal(preview_rgb(x), x[:, :3]) and torch.equal(preview_rgb(x, (4, 2, 0)), x[:, [4, 2, 0]])
    assert describe_preview(1) == "grey" and describe_preview(3) == "rgb"
    assert describe_preview(5) == "channels 0,1,2" and describe_preview(5, (3,)) == "grey of channel 3"


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
