"""UNSB: the second source image its data carries, and its translation in 1 to T steps of the
bridge, repeatable from a seed whatever the batch (its parity with the paper's code is in
test_parity.py)."""
import json

import numpy as np
import pytest
import torch
from helpers import TINY_UNSB, make_checkpoint, make_unpaired, random_image

from img2img.cli import main
from img2img.config import DataConfig
from img2img.data.transforms import eval_transform
from img2img.data.unpaired import UnpairedDataset
from img2img.errors import Img2ImgError
from img2img.translate import precision
from img2img.translate.translator import Translator


@pytest.fixture
def unsb_model(tmp_path):
    return Translator.from_checkpoint(make_checkpoint("unsb", tmp_path / "unsb.pt"), device="cpu")


def test_a_translation_repeats_exactly_from_its_seed_and_draws_the_same_noise_whatever_the_batch(unsb_model):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    translator = unsb_model.with_steps(3, seed=7)
    together = translator.translate_tensor(images)
    assert torch.equal(together, translator.translate_tensor(images))
    # Alone, each image gets the noise it got in the batch: the same up to the convolutions' rounding.
    alone = torch.cat([translator.translate_tensor(image[None]) for image in images])
    assert (together - alone).abs().max() < 1e-4
    other_seed = unsb_model.with_steps(3, seed=8).translate_tensor(images)
    assert (together - other_seed).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_each_number_of_steps_translates_differently_and_more_than_trained_is_refused(unsb_model):
    image = random_image(np.random.default_rng(0), 32, 32)
    outputs = [unsb_model.with_steps(n).translate_pixels([image])[0] for n in (1, 2, 5)]
    assert not np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[1], outputs[2])
    assert np.array_equal(outputs[2], unsb_model.translate_pixels([image])[0])  # all the trained steps by default
    assert unsb_model.with_steps(2).describe_precision("AtoB") == "fp32 (PyTorch), 2 steps"
    with pytest.raises(Img2ImgError, match="steps must be 1 to 5 \\(what the model was trained with\\), not 6"):
        unsb_model.with_steps(6)


def test_steps_are_refused_for_a_model_of_another_method(tmp_path):
    pix2pix = Translator.from_checkpoint(make_checkpoint("pix2pix", tmp_path / "p.pt"), device="cpu",
                                         engine="torch")
    with pytest.raises(Img2ImgError, match="steps and a seed are for UNSB models, not this pix2pix model"):
        pix2pix.with_steps(2)


def test_its_onnx_graph_is_one_step_run_as_many_times_as_asked_with_the_same_noise(tmp_path):
    from img2img.translate.onnx_graph import export_checkpoint

    path = make_checkpoint("unsb", tmp_path / "unsb.pt")
    export_checkpoint(path, tmp_path / "unsb.onnx")
    graph = Translator.from_checkpoint(tmp_path / "unsb.onnx", device="cpu")
    module = Translator.from_checkpoint(path, device="cpu", precision="fp32")
    images = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    outputs = []
    for steps in (1, 3):
        ours = graph.with_steps(steps, seed=2).translate_tensor(images)
        assert (ours - module.with_steps(steps, seed=2).translate_tensor(images)).abs().max() < 1e-3
        outputs.append(ours)
    assert (outputs[0] - outputs[1]).abs().max() > 1e-2  # the steps ran
    assert graph.with_steps(3).describe_precision("AtoB") == "fp32 (onnxruntime), 3 steps"


def test_an_int8_export_runs_its_steps_on_integer_kernels(tmp_path, monkeypatch):
    # Random weights fail any gate, and the search through every calibration would only cost time.
    monkeypatch.setattr(precision, "GATE", precision.QualityGate(mean_levels=255, p999_levels=255, min_speedup=0))
    path = make_checkpoint("unsb", tmp_path / "unsb.pt")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i in range(12):
        random_image(np.random.default_rng(i), 32, 32).save(calibration / f"{i}.png")
    assert main(["export", str(path), str(tmp_path / "unsb.int8.onnx"), "--format", "onnx", "--precision", "int8",
                 "--calibration", str(calibration)]) == 0
    int8 = Translator.from_checkpoint(tmp_path / "unsb.int8.onnx", device="cpu")
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    one, three = (int8.with_steps(n, seed=1).translate_tensor(images) for n in (1, 3))
    assert int8.with_steps(3).describe_precision("AtoB") == "int8 (onnxruntime), 3 steps"
    assert one.shape == images.shape and (one - three).abs().max() > 1e-2


def test_a_second_source_sample_adds_a_random_a_and_leaves_a_and_b_as_they_were(tmp_path):
    root = make_unpaired(tmp_path / "data", n_a=5, n_b=4)
    transform = eval_transform(DataConfig(size=32, load_size=32), 4)
    plain = UnpairedDataset(root / "trainA", root / "trainB", transform, seed=3)
    two = UnpairedDataset(root / "trainA", root / "trainB", transform, seed=3)
    two.second_source = True
    sources = set()
    for index in range(5):
        with_a2, without = two[(1, index)], plain[(1, index)]
        assert "A2" not in without
        assert torch.equal(with_a2["A"], without["A"]) and torch.equal(with_a2["B"], without["B"])
        sources.add(next(i for i in range(5) if torch.equal(with_a2["A2"], plain[(0, i)]["A"])))
    assert len(sources) > 1  # drawn at random, not the sample's own A


def test_the_hub_card_names_the_steps(tmp_path):
    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
    from img2img.training.publish import model_card

    path = make_checkpoint("unsb", tmp_path / "unsb.pt")
    card = model_card(checkpoint_config(load_checkpoint(path)), "someone/bridge", ["AtoB"], 10, None, None, None, [])
    assert "A **unsb** model" in card and "Translates in 1 to 5 steps of its Schrödinger bridge" in card


def test_a_safetensors_export_keeps_the_bridge_and_translates_as_the_checkpoint(tmp_path):
    path = make_checkpoint("unsb", tmp_path / "unsb.pt")
    assert main(["export", str(path), str(tmp_path / "exported"), "--format", "safetensors"]) == 0
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = Translator.from_checkpoint(path, device="cpu").with_steps(3, seed=4).translate_tensor(images)
    exported = Translator.from_checkpoint(tmp_path / "exported", device="cpu").with_steps(3, seed=4)
    assert torch.equal(ours, exported.translate_tensor(images))


def test_the_paper_recipe_is_its_training_command_and_a_flag_given_beside_it_wins(tmp_path):
    data = make_unpaired(tmp_path / "data")
    for flags, expected in (([], 1.0), (["--lambda-sb", "0.1"], 0.1)):
        out = tmp_path / f"run_{expected}"
        assert main(["train", "--data", str(data), *TINY_UNSB, "--recipe", "paper", *flags, "--max-steps", "1",
                     "--out", str(out)]) == 0
        settings = json.loads((out / "config.json").read_text())["method_config"]
        assert (settings["recipe"], settings["lambda_sb"], settings["lambda_nce"]) == ("paper", expected, 1.0)


def test_network_settings_it_has_no_use_for_are_refused_in_one_line(tmp_path, capsys):
    data = make_unpaired(tmp_path / "data")
    code = main(["train", "--data", str(data), *TINY_UNSB, "--no-antialias", "--spectral-norm", "--max-steps", "1",
                 "--out", str(tmp_path / "run")])
    assert code != 0 and not (tmp_path / "run" / "checkpoints").exists()
    assert "--no-antialias, --spectral-norm are not available for it" in capsys.readouterr().err
