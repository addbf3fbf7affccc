"""The canonical code's remaining training options: initialisations and dataset size."""
from __future__ import annotations

import pytest
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


def _optimizer(lr):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_each_lr_policy_follows_its_schedule_and_fills_a_tensor_lr_in_place():
    from img2img.config import TrainConfig
    from img2img.training.schedule import lr_scheduler

    train = TrainConfig(epochs=2, epochs_decay=2, lr=1.0, lr_decay_epochs=2)
    expected = {"linear": [1.0, 1.0, 2 / 3, 1 / 3], "step": [1.0, 1.0, 0.1, 0.1], "cosine": [1.0, 0.8536, 0.5, 0.1464]}
    for policy, lrs in expected.items():
        opt = _optimizer(1.0)
        # As a captured CUDA graph holds it (training/cuda_graph.py): one tensor, updated in place.
        opt.param_groups[0]["lr"] = lr = torch.tensor(1.0)
        scheduler = lr_scheduler(opt, TrainConfig(**{**vars(train), "lr_policy": policy}))
        seen = []
        for _ in range(4):
            seen.append(round(float(opt.param_groups[0]["lr"]), 4))
            scheduler.step()
        assert seen == [round(v, 4) for v in lrs], policy
        assert opt.param_groups[0]["lr"] is lr
    opt = _optimizer(1.0)
    plateau = lr_scheduler(opt, TrainConfig(lr_policy="plateau"))
    for _ in range(7):
        plateau.step(5.0)  # no improvement
    assert opt.param_groups[0]["lr"] == 0.2


@pytest.mark.parametrize("policy", ["linear", "step", "cosine", "plateau"])
def test_every_lr_policy_resumes_bit_for_bit(policy, tmp_path, capsys):
    from test_training import assert_resume_is_bitwise

    data = make_paired(tmp_path / "data")
    common = ["--data", str(data), *TINY_PIX2PIX, "--lr-policy", policy, "--epochs", "3", "--epochs-decay", "3",
              "--lr-decay-epochs", "2", "--fid-every", "1", "--fid-weights", str(tmp_path / "none.pth")]
    resumed = assert_resume_is_bitwise(common, tmp_path, stop=6, end=14, tensors=20)
    assert resumed["config"]["train"]["lr_policy"] == policy
    if policy == "plateau":
        assert "--lr-policy plateau watches the val L1" in capsys.readouterr().out
