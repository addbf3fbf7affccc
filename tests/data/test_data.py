import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image
from PIL import Image

from img2img.config import DataConfig
from img2img.data.loader import EpochSampler
from img2img.data.paired import PairedDataset
from img2img.data.transforms import train_transform
from img2img.data.unpaired import UnpairedDataset
from img2img.errors import ImageReadError, Img2ImgError
from img2img.io.readers import load_rgb


def make_identical_pairs(folder: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for i in range(n):
        a = np.asarray(random_image(rng, 40, 40))
        Image.fromarray(np.concatenate([a, a], axis=1)).save(folder / f"{i}.png")
    return folder


def test_a_and_b_get_identical_crops_and_flips(tmp_path):
    ds = PairedDataset(make_identical_pairs(tmp_path / "train"), train_transform(DataConfig(load_size=40, size=24, flip=True)))
    crops = set()
    for epoch in range(4):
        for i in range(len(ds)):
            item = ds[(epoch, i)]
            assert torch.equal(item["A"], item["B"])
            crops.add(item["A"].sum().item())
    # The geometry really varies (otherwise the test above proves nothing).
    assert len(crops) > len(ds)


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path):
    ds = PairedDataset(make_identical_pairs(tmp_path / "train"), train_transform(DataConfig(load_size=40, size=24, flip=True)), seed=3)
    assert torch.equal(ds[(2, 5)]["A"], ds[(2, 5)]["A"])
    assert not torch.equal(ds[(2, 5)]["A"], ds[(3, 5)]["A"])


def test_flip_can_be_turned_off(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    a = np.zeros((8, 8, 3), np.uint8)
    a[:, :4] = 255  # left half white
    Image.fromarray(np.concatenate([a, a], axis=1)).save(folder / "x.png")
    ds = PairedDataset(folder, train_transform(DataConfig(load_size=8, size=8, flip=False)))
    for epoch in range(10):
        assert ds[(epoch, 0)]["A"][0, 0, 0] == 1.0  # still white on the left


def test_outputs_are_normalised_to_minus_one_one(paired_dir):
    ds = PairedDataset(paired_dir / "train", train_transform(DataConfig(load_size=36, size=32, flip=True)))
    item = ds[0]
    assert item["A"].shape == (3, 32, 32)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert item["A"].min() < -0.5 and item["A"].max() > 0.5


def test_direction_btoa_swaps_a_and_b(paired_dir):
    t = train_transform(DataConfig(load_size=32, size=32, flip=False))
    ab = PairedDataset(paired_dir / "train", t)[0]
    ba = PairedDataset(paired_dir / "train", t, direction="BtoA")[0]
    assert torch.equal(ab["A"], ba["B"]) and torch.equal(ab["B"], ba["A"])


def test_a_and_b_folders_with_matching_names(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("A", "B"):
        (tmp_path / "train" / sub).mkdir(parents=True)
        for name in ("x", "y"):
            random_image(rng, 32, 32).save(tmp_path / "train" / sub / f"{name}.png")
    ds = PairedDataset(tmp_path / "train", train_transform(DataConfig(load_size=32, size=32, flip=False)))
    assert len(ds) == 2 and ds[1]["A"].shape == (3, 32, 32)


def test_mismatched_a_and_b_names_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    for sub, name in (("A", "x"), ("B", "y")):
        (tmp_path / "train" / sub).mkdir(parents=True)
        random_image(rng, 32, 32).save(tmp_path / "train" / sub / f"{name}.png")
    with pytest.raises(Img2ImgError, match="do not match.*x.*y"):
        PairedDataset(tmp_path / "train", train_transform(DataConfig(load_size=32, size=32, flip=False)))


def test_odd_width_pair_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGB", (33, 16)).save(tmp_path / "train" / "odd.png")
    with pytest.raises(Img2ImgError, match="odd.png: width 33 is odd"):
        PairedDataset(tmp_path / "train", train_transform(DataConfig(load_size=16, size=16, flip=False)))


def test_unpaired_epoch_is_the_larger_domain_and_serial_pairs_in_order(unpaired_dir):
    t = train_transform(DataConfig(load_size=32, size=32, flip=False))
    ds = UnpairedDataset(unpaired_dir / "trainA", unpaired_dir / "trainB", t, serial=True)
    assert len(ds) == 4
    b_paths = sorted((unpaired_dir / "trainB").iterdir())
    expected = torch.from_numpy(np.array(load_rgb(b_paths[2]))).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(ds[2]["B"], expected)


def test_unpaired_random_b_varies_with_epoch(unpaired_dir):
    t = train_transform(DataConfig(load_size=32, size=32, flip=False))
    ds = UnpairedDataset(unpaired_dir / "trainA", unpaired_dir / "trainB", t)
    partners = {ds[(epoch, 0)]["B"].sum().item() for epoch in range(12)}
    assert len(partners) > 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    rgb = Image.new("RGB", (10, 6), (200, 100, 50))
    if mode == "I;16":
        im = Image.fromarray(np.full((6, 10), 65535, np.uint16))
    else:
        im = rgb.convert(mode)
    ext = "tif" if mode in ("CMYK", "I;16") else "png"
    im.save(tmp_path / f"x.{ext}")
    out = load_rgb(tmp_path / f"x.{ext}")
    assert out.mode == "RGB" and out.size == (10, 6)
    if mode == "I;16":
        assert np.asarray(out).min() == 255  # full 16-bit range maps to full 8-bit range


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_rgb(tmp_path / "clear.png")).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (20, 10))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (10, 20)


def test_broken_image_error_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.png: cannot read image"):
        load_rgb(tmp_path / "bad.png")


def test_sampler_resumes_mid_epoch_with_the_same_order():
    full = list(EpochSampler(10, shuffle=True, seed=4))
    s = EpochSampler(10, shuffle=True, seed=4)
    s.set_epoch(0, start=6)
    assert list(s) == full[6:]
    s.set_epoch(1)
    assert [i for _, i in s] != [i for _, i in full]


def test_sampler_shards_across_ranks_without_overlap():
    shards = [list(EpochSampler(10, shuffle=True, seed=0, rank=r, num_replicas=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)
    assert set().union(*({i for _, i in s} for s in shards)) == set(range(10))


def test_train_resize_is_pil_antialiased_bicubic_on_both_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    out = train_transform(DataConfig(load_size=37, size=37, flip=False))(image=a, image_b=b)
    for source, resized in ((a, out["image"]), (b, out["image_b"])):
        expected = np.asarray(Image.fromarray(source).resize((37, 37), Image.BICUBIC))
        assert np.array_equal(resized, expected)


def test_transforms_pickle_for_data_workers_started_by_spawn():
    for resize in ("bicubic", "area"):
        t = pickle.loads(pickle.dumps(train_transform(DataConfig(load_size=36, size=32, flip=True, resize=resize))))
        t.set_random_seed(0)
        assert t(image=np.zeros((40, 40, 3), np.uint8))["image"].shape == (32, 32, 3)
