"""The canonical code's remaining training options: initialisations and dataset size."""
from __future__ import annotations

import torch

from img2img.checkpoint import checkpoint_config, load_checkpoint
from img2img.cli import main
from img2img.config import ModelConfig, RunConfig
from img2img.methods import METHODS
from img2img.models import build_discriminator, init_weights

from conftest import TINY_PIX2PIX, make_paired, make_unpaired


def test_each_init_type_draws_its_own_weights_and_keeps_the_gain():
    torch.manual_seed(0)
    orthogonal = init_weights(build_discriminator(ModelConfig(ndf=8), 3), 1.0, "orthogonal")
    w = next(m.weight for m in orthogonal.modules() if isinstance(m, torch.nn.Conv2d)).flatten(1)
    assert torch.allclose(w @ w.T, torch.eye(len(w)), atol=1e-4)
    normal = init_weights(build_discriminator(ModelConfig(ndf=8), 3), 0.02, "normal")
    w = next(m.weight for m in normal.modules() if isinstance(m, torch.nn.Conv2d))
    assert abs(w.std().item() - 0.02) < 0.005
    kaiming = init_weights(build_discriminator(ModelConfig(ndf=8), 3), 0.02, "kaiming")
    w = next(m.weight for m in kaiming.modules() if isinstance(m, torch.nn.Conv2d))
    assert abs(w.std().item() - (2 / w[0].numel()) ** 0.5) < 0.05


def test_the_methods_default_initialisations_are_unchanged():
    assert [METHODS[m].default_model().init_type for m in ("pix2pix", "cyclegan", "cut", "fastcut")] == [
        "normal", "normal", "xavier", "xavier"]
    assert RunConfig.for_method("pix2pix").model.init_gain == 0.02


def test_init_type_is_stored_and_cannot_change_on_resume(tmp_path, capsys):
    data = make_paired(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--max-steps", "1", "--init-type", "kaiming",
                 "--init-gain", "0.5", *TINY_PIX2PIX]) == 0
    model = checkpoint_config(load_checkpoint(out / "checkpoints/latest.pt")).model
    assert (model.init_type, model.init_gain) == ("kaiming", 0.5)
    capsys.readouterr()
    assert main(["train", "--resume", "auto", "--out", str(out), "--max-steps", "2", "--init-type", "xavier"]) == 2
    assert "--init-type xavier cannot change when resuming" in capsys.readouterr().err


def test_max_dataset_size_trains_on_a_fixed_seeded_subset(tmp_path):
    from img2img.data.builders import build_train_dataset

    data = make_unpaired(tmp_path / "data", n_a=6, n_b=7)
    cfg = RunConfig.for_method("cyclegan")
    cfg.data.root, cfg.data.max_dataset_size = str(data), 3

    def subset(seed):
        cfg.train.seed = seed
        ds = build_train_dataset(cfg)
        return [str(i) for i in ds.files_a], [str(i) for i in ds.files_b]

    first = subset(0)
    assert len(first[0]) == len(first[1]) == 3
    assert subset(0) == first and subset(1) != first
    assert main(["train", "--data", str(make_paired(tmp_path / "p", n_train=5)), "--out", str(tmp_path / "r"),
                 "--max-dataset-size", "0", *TINY_PIX2PIX]) == 2
