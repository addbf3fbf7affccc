"""Conversion of the canonical code's generators. The canonical networks are rebuilt here from
their published layout (../shared/reference/canonical_state_dicts.txt), independently of
img2img's modules, so their state_dicts carry the canonical names and their forward is the
canonical forward."""
import functools
import re
import sys

import numpy as np
import pytest
import torch
from helpers import SHARED, canonical_resnet, randomise
from PIL import Image
from torch import nn

from img2img.cli import main
from img2img.translate.pretrained import convert, infer_architecture
from img2img.translate.translator import Translator

REFERENCE = SHARED / "reference" / "canonical_state_dicts.txt"


class CanonicalUnetBlock(nn.Module):
    """One level as the canonical code lays it out: a single Sequential named `model`."""

    def __init__(self, outer, inner, input_nc=None, sub=None, outermost=False, innermost=False, dropout=False):
        super().__init__()
        self.outermost = outermost
        input_nc = input_nc or outer
        down = nn.Conv2d(input_nc, inner, 4, 2, 1, bias=False)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class CanonicalUnet(nn.Module):
    def __init__(self, num_downs=8, ngf=64):
        super().__init__()
        block = CanonicalUnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = CanonicalUnetBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
        for mult in (4, 2, 1):
            block = CanonicalUnetBlock(ngf * mult, ngf * mult * 2, sub=block)
        self.model = CanonicalUnetBlock(3, ngf, input_nc=3, sub=block, outermost=True)

    def forward(self, x):
        return self.model(x)






def reference_layout(section: str) -> dict[str, tuple[int, ...]]:
    text = REFERENCE.read_text().split(f"## {section}")[1].split("##")[0]
    shapes = {}
    for name, shape in re.findall(r"^(model\S+)\t\(([^)]*)\)", text, flags=re.M):
        shapes[name] = tuple(int(s) for s in shape.split(",") if s.strip())
    return shapes


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/reference is not beside this checkout")
def test_canonical_replicas_match_the_published_layout():
    unet = {k: tuple(v.shape) for k, v in CanonicalUnet().state_dict().items()}
    assert unet == reference_layout("pix2pix unet_256")
    resnet = {k: tuple(v.shape) for k, v in canonical_resnet().state_dict().items()}
    assert resnet == reference_layout("CycleGAN resnet_9blocks")




def as_uint8(x: torch.Tensor) -> np.ndarray:
    """The canonical code's image conversion: (x + 1) / 2 * 255."""
    return ((x[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8).astype(int)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unet", "resnet"])
def test_converted_generator_reproduces_the_canonical_output(kind, tmp_path):
    if kind == "unet":
        canonical, size, expected = randomise(CanonicalUnet(num_downs=6, ngf=8), 0), 64, ("unet_64", "batch", 8)
    else:
        canonical, size, expected = randomise(canonical_resnet(n_blocks=6, ngf=8), 1), 36, ("resnet_6blocks",
                                                                                           "instance", 8)
    state = {f"module.{k}": v for k, v in canonical.state_dict().items()}  # as saved from DataParallel
    if kind == "resnet":
        state["module.model.2.running_mean"] = torch.zeros(8)  # old InstanceNorm files carry these
    else:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "canonical.pth")
    assert infer_architecture({k.removeprefix("module."): v for k, v in state.items()}) == expected
    convert(tmp_path / "canonical.pth", tmp_path / "converted.pt")
    translator = Translator.from_checkpoint(tmp_path / "converted.pt", device="cpu", batch_norm="running")
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        reference = canonical(x)
    ours = translator.translate_tensor(x)
    assert np.abs(as_uint8(ours) - as_uint8(reference)).max() <= 1
    assert reference.std() > 0.05  # a real image, not a constant


def test_mismatched_weights_are_refused_with_a_clear_error(tmp_path, capsys):
    state = canonical_resnet(n_blocks=6, ngf=8).state_dict()
    torch.save(state, tmp_path / "c.pth")
    assert main(["pretrained", "convert", str(tmp_path / "c.pth"), str(tmp_path / "o.pt"),
                 "--netG", "resnet_9blocks"]) == 2
    assert "do not fit resnet_9blocks" in capsys.readouterr().err


def test_pretrained_download_converts_for_translate_and_the_app(tmp_path):
    from helpers import Server

    from img2img.translate.catalog import describe_checkpoint

    server = Server()
    try:
        buf = tmp_path / "h.pth"
        torch.save(randomise(canonical_resnet(n_blocks=6, ngf=8), 3).state_dict(), buf)
        server.files["/horse2zebra.pth"] = buf.read_bytes()
        assert main(["pretrained", "download", "horse2zebra", "--dir", str(tmp_path / "ck"),
                     "--url", server.url("/horse2zebra.pth")]) == 0
    finally:
        server.httpd.shutdown()
    info = describe_checkpoint(tmp_path / "ck" / "horse2zebra.pt")
    assert info.directions == ("AtoB",) and info.domains == ("horse", "zebra") and info.method == "cyclegan"
    out = Translator.from_checkpoint(tmp_path / "ck" / "horse2zebra.pt", device="cpu").translate(
        Image.new("RGB", (30, 22), "white"))
    assert out.size == (30, 22)


REFERENCE_CUT = SHARED / "reference" / "cut"


@pytest.mark.skipif(not (REFERENCE_CUT / "models" / "networks.py").is_file(),
                    reason="CUT's reference code (../shared/reference/cut) is not beside this checkout")
def test_a_cut_reference_generator_converts_and_translates_as_it_does(tmp_path):
    """The reference's anti-aliased ResnetGenerator, built by its own code, saved as its
    training saves it (blur filters included): the conversion gives a CUT checkpoint with the
    same output."""
    import importlib

    sys.path.insert(0, str(REFERENCE_CUT))
    try:
        networks = importlib.import_module("models.networks")  # the reference's own package
    finally:
        sys.path.remove(str(REFERENCE_CUT))
        for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
            del sys.modules[name]
    torch.manual_seed(0)
    norm = functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False)
    theirs = networks.ResnetGenerator(3, 3, ngf=16, norm_layer=norm, n_blocks=9).eval()
    for p in theirs.parameters():
        torch.nn.init.normal_(p, 0.0, 0.1)
    torch.save(theirs.state_dict(), tmp_path / "latest_net_G.pth")
    convert(tmp_path / "latest_net_G.pth", tmp_path / "cut.pt")
    translator = Translator.from_checkpoint(tmp_path / "cut.pt", device="cpu", engine="torch")
    assert translator.cfg.method == "cut" and translator.cfg.model.antialias
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(translator.translate_tensor(x), theirs(x), atol=1e-5)


@pytest.fixture
def published(tmp_path):
    """A local server holding a (tiny) horse2zebra generator in the canonical layout."""
    from helpers import Server

    server = Server()
    buf = tmp_path / "h.pth"
    torch.save(randomise(canonical_resnet(n_blocks=6, ngf=8), 3).state_dict(), buf)
    server.files["/horse2zebra.pth"] = buf.read_bytes()
    yield server
    server.httpd.shutdown()


def test_two_callers_asking_for_one_model_at_once_cause_one_download(published, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from img2img.translate.pretrained import download_pretrained

    published.chunk_delay = 0.05  # the first download is still running when the second asks
    url = published.url("/horse2zebra.pth")
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: download_pretrained("horse2zebra", tmp_path / "ck", url=url), range(2)))
    assert paths[0] == paths[1] == tmp_path / "ck" / "horse2zebra.pt"
    assert [path for path, _ in published.requests] == ["/horse2zebra.pth"]


def test_an_interrupted_download_resumes_and_reports_its_progress(published, tmp_path):
    from img2img.errors import Img2ImgError
    from img2img.translate.catalog import discover_checkpoints
    from img2img.translate.pretrained import download_pretrained

    url, folder = published.url("/horse2zebra.pth"), tmp_path / "ck"
    published.cut_next = True
    with pytest.raises(Img2ImgError, match="interrupted"):
        download_pretrained("horse2zebra", folder, url=url)
    assert discover_checkpoints(folder) == ([], [])  # nothing half-downloaded is listed
    seen = []
    download_pretrained("horse2zebra", folder, url=url, progress=lambda done, total: seen.append((done, total)))
    size = len(published.files["/horse2zebra.pth"])
    assert published.requests[-1][1] == f"bytes={size // 2}-"  # resumed where it stopped
    assert seen[-1] == (size, size) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    (info,), _ = discover_checkpoints(folder)
    assert info.name == "horse2zebra" and not (folder / ".downloads" / "horse2zebra.pth").exists()


def test_a_corrupt_download_is_refused_removed_and_fetched_afresh(published, tmp_path):
    from img2img.errors import Img2ImgError
    from img2img.translate.catalog import discover_checkpoints
    from img2img.translate.pretrained import download_pretrained

    good = published.files["/horse2zebra.pth"]
    published.files["/horse2zebra.pth"] = b"\x00garbage" * 1000
    url, folder = published.url("/horse2zebra.pth"), tmp_path / "ck"
    with pytest.raises(Img2ImgError, match="not the published generator.*removed it, try again"):
        download_pretrained("horse2zebra", folder, url=url)
    assert discover_checkpoints(folder) == ([], []) and not list((folder / ".downloads").iterdir())
    published.files["/horse2zebra.pth"] = good
    assert download_pretrained("horse2zebra", folder, url=url).is_file()


def test_a_published_model_card_gives_its_origin_licence_and_digest(published, tmp_path):
    import hashlib

    from img2img.translate.catalog import describe_checkpoint
    from img2img.translate.pretrained import download_pretrained

    url = published.url("/horse2zebra.pth")
    facts = dict(describe_checkpoint(download_pretrained("horse2zebra", tmp_path / "ck", url=url)).facts)
    assert facts["origin"].startswith("CycleGAN (Zhu, Park, Isola & Efros 2017)")
    assert facts["source"] == url and "BSD" in facts["licence"]
    assert facts["sha256 of the published file"] == hashlib.sha256(published.files["/horse2zebra.pth"]).hexdigest()
    assert facts["method"] == "cyclegan, resnet_6blocks, ngf 8, instance norm"
    assert not any(k.startswith("val ") for k in facts)  # no card, so no metrics


def test_published_models_are_named_by_what_they_do():
    from img2img.translate.pretrained import PRETRAINED

    assert PRETRAINED["horse2zebra"].label == "horse → zebra"
    assert PRETRAINED["style_monet"].label == "photo → Monet painting"
    assert PRETRAINED["edges2shoes"].label == "edges → shoe"
    assert PRETRAINED["summer2winter_yosemite"].label == "summer → winter (yosemite)"
    assert PRETRAINED["horse2zebra"].approximate_mb == 46 and PRETRAINED["edges2shoes"].approximate_mb == 218


def test_a_published_model_is_fetched_over_https_where_offered_else_over_http(published, tmp_path, monkeypatch, caplog):
    import dataclasses

    from img2img.translate import pretrained

    # The test's server speaks plain HTTP only: the HTTPS attempt gets no TLS and falls back.
    entry = dataclasses.replace(pretrained.PRETRAINED["horse2zebra"], url=published.url("/horse2zebra.pth"))
    monkeypatch.setitem(pretrained.PRETRAINED, "horse2zebra", entry)
    with caplog.at_level("WARNING", logger="img2img"):
        path = pretrained.download_pretrained("horse2zebra", tmp_path / "ck")
    assert path.is_file() and "no HTTPS from 127.0.0.1" in caplog.text
    assert [p for p, _ in published.requests] == ["/horse2zebra.pth"]
