"""Loading models from the Hugging Face Hub by hf:// (against a Hub server of the test's own)."""
import numpy as np
import pytest
from helpers import HubServer, make_checkpoint, random_image

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.translate.translator import Translator


@pytest.fixture
def hub(tmp_path, monkeypatch):
    server = HubServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.httpd.shutdown()


def model_files(tmp_path, method: str, seed: int = 0, **model) -> tuple:
    checkpoint = make_checkpoint(method, tmp_path / f"{method}{seed}.pt", seed=seed, model=model or None)
    folder = tmp_path / f"{method}{seed}_export"
    assert main(["export", str(checkpoint), str(folder), "--format", "safetensors"]) == 0
    return checkpoint, {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("method,model", [("pix2pix", dict(netG="unet_32", ngf=8)), ("cyclegan", {})])
def test_a_hub_model_translates_bit_for_bit_as_the_local_checkpoint(hub, tmp_path, method, model):
    checkpoint, files = model_files(tmp_path, method, **model)
    hub.add("someone/small", files)
    image = random_image(np.random.default_rng(0), 40, 32)
    local = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch", precision="fp32")
    for loaded in (Translator.from_checkpoint("hf://someone/small", device="cpu", engine="torch", precision="fp32"),
                   Translator.from_pretrained("someone/small", device="cpu", engine="torch", precision="fp32")):
        for direction in local.directions:
            assert np.array_equal(local.translate_pixels(image, direction), loaded.translate_pixels(image, direction))
    assert any(r.startswith("GET /someone/small/resolve/") for r in hub.requests)


def test_a_pinned_revision_loads_that_commit_and_offline_uses_the_cache(hub, tmp_path, monkeypatch):
    first_checkpoint, first = model_files(tmp_path, "pix2pix", seed=0, netG="unet_32", ngf=8)
    commit = hub.add("someone/small", first)
    _, second = model_files(tmp_path, "pix2pix", seed=1, netG="unet_32", ngf=8)
    hub.add("someone/small", second)
    image = random_image(np.random.default_rng(0), 32, 32)
    pinned = Translator.from_checkpoint(f"hf://someone/small@{commit}", device="cpu", engine="torch", precision="fp32")
    local = Translator.from_checkpoint(first_checkpoint, device="cpu", engine="torch", precision="fp32")
    assert np.array_equal(pinned.translate_pixels(image), local.translate_pixels(image))
    hub.httpd.shutdown()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = Translator.from_checkpoint(f"hf://someone/small@{commit}", device="cpu", engine="torch", precision="fp32")
    assert np.array_equal(cached.translate_pixels(image), local.translate_pixels(image))


def test_hub_problems_are_one_line_naming_the_repo(hub, tmp_path, monkeypatch):
    hub.add("someone/notes", {"README.md": b"# notes\n"})
    with pytest.raises(Img2ImgError, match=r"^hf://someone/notes: not an img2img model repo: no model.safetensors "
                                           r"and no config.json"):
        Translator.from_checkpoint("hf://someone/notes", device="cpu")
    with pytest.raises(Img2ImgError, match=r"^hf://someone/absent: no model repo someone/absent"):
        Translator.from_checkpoint("hf://someone/absent", device="cpu")
    with pytest.raises(Img2ImgError, match=r"^hf://someone/notes@v9: the repo someone/notes has no revision v9"):
        Translator.from_checkpoint("hf://someone/notes@v9", device="cpu")
    with pytest.raises(Img2ImgError, match=r"^hf://nobody: a Hub model is hf://USER/NAME"):
        Translator.from_checkpoint("hf://nobody", device="cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Img2ImgError, match=r"^hf://someone/other: not in the Hub cache, and HF_HUB_OFFLINE is set"):
        Translator.from_checkpoint("hf://someone/other", device="cpu")


def test_translate_takes_an_hf_checkpoint(hub, tmp_path, capsys):
    _, files = model_files(tmp_path, "pix2pix", netG="unet_32", ngf=8)
    hub.add("someone/small", files)
    (tmp_path / "in").mkdir()
    random_image(np.random.default_rng(0), 32, 32).save(tmp_path / "in" / "a.png")
    assert main(["translate", "--checkpoint", "hf://someone/small", str(tmp_path / "in"), str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "a.png").is_file()
