"""Loading models from the Hugging Face Hub by hf:// (against a Hub server of the test's own)."""
from pathlib import Path

import numpy as np
import pytest
from helpers import make_checkpoint, random_image

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.methods import new_run_config
from img2img.translate.translator import Translator


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


def trained(tmp_path, method: str, extra: list[str]) -> Path:
    from helpers import make_paired, make_unpaired

    data = make_paired(tmp_path / "data") if method == "pix2pix" else make_unpaired(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "--model", method, "--data", str(data), "--out", str(out), "--max-steps", "2",
                 "--size", "32", "--load-size", "32", "--ngf", "8", "--ndf", "8", "--num-workers", "0",
                 "--fid-every", "0", "--sample-every", "1", "--device", "cpu", *extra]) == 0
    return out / "checkpoints" / "latest.pt"


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [("pix2pix", ["--netG", "unet_32"]), ("cyclegan", ["--netG", "resnet_6blocks"])])
def test_a_pushed_model_loads_by_hf_and_translates_bit_for_bit(hub, tmp_path, method, extra, capsys):
    checkpoint = trained(tmp_path, method, extra)
    assert main(["push", "--checkpoint", str(checkpoint), "--repo", "someone/tiny", "--license", "mit"]) == 0
    assert "pushed" in capsys.readouterr().out
    commit = hub.refs["someone/tiny"]["main"]
    stored = hub.repos["someone/tiny"][commit]
    assert {"model.safetensors", "config.json", "README.md", "sample.png"} <= set(stored)
    card = stored["README.md"].decode()
    assert card.startswith("---\nlibrary_name: img2img\npipeline_tag: image-to-image\n")
    assert f"tags: [img2img, {method}, gan, image-to-image]" in card and "license: mit" in card
    image = random_image(np.random.default_rng(0), 32, 32)
    local = Translator.from_checkpoint(checkpoint, device="cpu", engine="torch", precision="fp32")
    remote = Translator.from_checkpoint("hf://someone/tiny", device="cpu", engine="torch", precision="fp32")
    for direction in local.directions:
        assert np.array_equal(local.translate_pixels(image, direction), remote.translate_pixels(image, direction))


def test_the_card_states_only_the_metrics_the_run_measured(hub, tmp_path):
    from img2img.training.publish import model_card, validation_results

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,epoch,G_GAN,val_l1,val_psnr,fid_AtoB\n10,1,0.5,,,\n20,2,0.4,0.125,21.5,\n"
                                     "30,3,0.3,,,\n")
    found = validation_results(run, step=30)
    assert found.step == 20 and found.values == {"val_l1": 0.125, "val_psnr": 21.5}
    assert validation_results(run, step=10) is None

    card = model_card(new_run_config("pix2pix"), "someone/tiny", ["AtoB"], 30, found, None, None, [], 7)
    assert "{type: l1, value: 0.125, name: L1 at step 20}" in card and "{type: psnr, value: 21.5" in card
    assert ", 7 validation images" in card and "```bash\nimg2img train --model pix2pix" in card
    assert "fid" not in card.split("---")[1] and "license" not in card
    silent = model_card(new_run_config("pix2pix"), "someone/tiny", ["AtoB"], 30, None, None, None, [])
    assert "model-index" not in silent and "recorded no validation metrics" in silent


def test_the_card_says_which_way_where_it_started_what_it_trained_on_and_no_server_path(tmp_path):
    import dataclasses

    from img2img.training.publish import Validation, model_card

    cfg = new_run_config("pix2pix")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root="/srv/img2img/data/maps", domain_a="aerial",
                                                            domain_b="map"),
                              train=dataclasses.replace(cfg.train, init_from="/srv/img2img/models/maps/model.pt"))
    found = Validation(600, {"val_l1": 0.1, "val_psnr": 20.0, "val_ssim": 0.5})
    card = model_card(cfg, "someone/tiny", ["AtoB"], 600, found, None, None, [], 20, trained_on="cpu")
    assert "aerial → map" in card and "↔" not in card and "github.com/" not in card
    assert "Started from the trained model `model.pt`" in card and "- Trained on: cpu." in card
    assert "--data maps" in card and "--init-from model.pt" in card and "/srv/" not in card
    assert "{type: ssim, value: 0.5, name: SSIM at step 600}" in card


def test_a_push_to_a_branch_leaves_main_alone(hub, tmp_path):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=dict(netG="unet_32", ngf=8))
    assert main(["push", "--checkpoint", str(checkpoint), "--repo", "someone/tiny"]) == 0
    main_commit = hub.refs["someone/tiny"]["main"]
    assert main(["push", "--checkpoint", str(checkpoint), "--repo", "someone/tiny", "--revision", "v2",
                 "--onnx", "--private"]) == 0
    assert hub.refs["someone/tiny"]["main"] == main_commit
    assert "model.onnx" in hub.repos["someone/tiny"][hub.refs["someone/tiny"]["v2"]]


def test_every_command_that_loads_checkpoints_takes_hf(hub, tmp_path, capsys):
    from img2img.persist.checkpoint import load_checkpoint

    _, files = model_files(tmp_path, "cyclegan")
    hub.add("someone/small", files)
    assert load_checkpoint("hf://someone/small")["config"]["method"] == "cyclegan"
    assert main(["export", "hf://someone/small", str(tmp_path / "small.pt")]) == 0
    assert load_checkpoint(tmp_path / "small.pt")["config"]["method"] == "cyclegan"


def test_the_bundled_model_publishes_as_it_is_with_its_hub_card(hub, tmp_path):
    from helpers import ROOT
    from huggingface_hub import ModelCard

    bundled = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"
    assert main(["push", "--checkpoint", str(bundled), "--repo", "img2img/maps_aerial2map"]) == 0
    stored = hub.repos["img2img/maps_aerial2map"][hub.refs["img2img/maps_aerial2map"]["main"]]
    assert stored["README.md"] == (bundled.parent / "README.md").read_bytes()
    assert {"model.safetensors", "config.json", "samples/sample_1.jpg"} <= set(stored)
    card = ModelCard(stored["README.md"].decode())
    assert card.data.library_name == "img2img" and card.data.pipeline_tag == "image-to-image"
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("l1", 0.06192), ("psnr", 26.42), ("ssim", 0.6854), ("fid", 259.0), ("kid", 0.221)}


@pytest.mark.slow
def test_a_run_pushed_with_its_training_state_resumes_from_the_hub_bit_for_bit(hub, tmp_path):
    from helpers import TINY_CYCLEGAN, compare_states, make_unpaired

    from img2img.persist.checkpoint import load_checkpoint

    data = make_unpaired(tmp_path / "data")
    flags = ["train", "--data", str(data), *TINY_CYCLEGAN, "--sample-every", "0"]
    assert main([*flags, "--out", str(tmp_path / "straight"), "--max-steps", "4"]) == 0
    assert main([*flags, "--out", str(tmp_path / "first"), "--max-steps", "2"]) == 0
    pushed = tmp_path / "first" / "checkpoints" / "latest.pt"
    assert main(["push", "--checkpoint", str(pushed), "--repo", "someone/run", "--with-training-state"]) == 0
    stored = hub.repos["someone/run"][hub.refs["someone/run"]["main"]]
    assert {"training_state.safetensors", "training_state.json"} <= set(stored)
    # No pickle in the repo: every file is safetensors, JSON, the card or the sample image.
    import json

    from safetensors.torch import load as load_safetensors

    for name, data in stored.items():
        if name.endswith(".safetensors"):
            load_safetensors(data)
        elif name.endswith(".json"):
            json.loads(data)
        else:
            assert name in ("README.md", "sample.png"), name
    # Translating fetches the model's two files only; resuming fetches the training state too.
    assert "optimizers" not in load_checkpoint("hf://someone/run")["method"]
    original, fetched = load_checkpoint(pushed), load_checkpoint("hf://someone/run", training_state=True)
    assert compare_states(original, fetched) > 50
    # Python's RNG state comes back as the tuple random.setstate takes, not JSON's list.
    assert isinstance(original["rng"]["python"], tuple) and fetched["rng"]["python"] == original["rng"]["python"]
    assert isinstance(fetched["rng"]["python"], tuple)
    assert main(["train", "--resume", "hf://someone/run", "--out", str(tmp_path / "resumed"), "--max-steps", "4"]) == 0
    straight = load_checkpoint(tmp_path / "straight/checkpoints/latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed/checkpoints/latest.pt")
    for state in (straight, resumed):
        del state["config"]["train"]["out"], state["config"]["train"]["max_steps"]
    assert compare_states(straight, resumed) > 50


def test_an_export_cannot_be_pushed_with_training_state(hub, tmp_path, capsys):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt", model=dict(netG="unet_32", ngf=8))
    assert main(["push", "--checkpoint", str(checkpoint), "--repo", "someone/x", "--with-training-state"]) != 0
    assert "holds no training state" in capsys.readouterr().err


def test_a_hub_models_int8_cache_is_in_img2imgs_cache_not_the_hubs(hub, tmp_path, monkeypatch):
    from img2img.translate.precision import int8_cache_path

    monkeypatch.setenv("IMG2IMG_CACHE", str(tmp_path / "img2img_cache"))
    _, files = model_files(tmp_path, "pix2pix", netG="unet_32", ngf=8)
    hub.add("someone/small", files)
    translator = Translator.from_checkpoint("hf://someone/small", device="cpu", precision="int8",
                                            calibration=make_calibration(tmp_path))
    path = translator.onnx["AtoB"].path
    assert path.is_relative_to(tmp_path / "img2img_cache") and not path.is_relative_to(tmp_path / "hub_cache")
    assert int8_cache_path(tmp_path / "model.pt", "0" * 64, "AtoB", "image").parent == tmp_path / "img2img_cache" / "int8"


def make_calibration(tmp_path) -> Path:
    folder = tmp_path / "calibration"
    folder.mkdir()
    for i in range(4):
        random_image(np.random.default_rng(i), 32, 32).save(folder / f"{i}.png")
    return folder


def test_a_pushed_runs_card_states_the_validation_figures_the_run_ended_with(hub, tmp_path):
    from helpers import TINY_PIX2PIX, make_paired

    data = make_paired(tmp_path / "data", n_train=4, n_val=2)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY_PIX2PIX, "--max-steps", "3"]) == 0
    assert main(["push", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "latest.pt"), "--repo",
                 "someone/run"]) == 0
    card = hub.repos["someone/run"][hub.refs["someone/run"]["main"]]["README.md"].decode()
    metadata = card.split("---")[1]
    for name in ("l1", "psnr", "ssim"):
        assert f"{{type: {name}, value: " in metadata and "at step 3}" in metadata
    assert "fid" not in metadata and "- Trained on: cpu." in card and "A → B" in card
    assert "FID and KID: not measured: 2 validation images, fewer than the 50 FID needs" in card
