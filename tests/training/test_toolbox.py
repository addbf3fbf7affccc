"""The canonical code's remaining training options: initialisations and dataset size."""
from __future__ import annotations

import pytest
import torch
from helpers import TINY_PIX2PIX, make_paired, make_unpaired, tiny_method

from img2img.cli import main
from img2img.config import ModelConfig
from img2img.methods import METHODS, new_run_config
from img2img.models import build_discriminator, init_weights
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.training.guard import guarded_step


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
    assert new_run_config("pix2pix").model.init_gain == 0.02


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
    cfg = new_run_config("cyclegan")
    cfg.data.root, cfg.data.max_dataset_size = str(data), 3

    def subset(seed):
        cfg.train.seed = seed
        ds = build_train_dataset(cfg, METHODS[cfg.method].dataset_kind)
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


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["linear", "step", "cosine", "plateau"])
def test_every_lr_policy_resumes_bit_for_bit(policy, tmp_path, capsys):
    from helpers import assert_resume_is_bitwise

    data = make_paired(tmp_path / "data")
    common = ["--data", str(data), *TINY_PIX2PIX, "--lr-policy", policy, "--epochs", "3", "--epochs-decay", "3",
              "--lr-decay-epochs", "2", "--fid-every", "1", "--fid-weights", str(tmp_path / "none.pth")]
    resumed = assert_resume_is_bitwise(common, tmp_path, stop=6, end=14, tensors=20)
    assert resumed["config"]["train"]["lr_policy"] == policy
    if policy == "plateau":
        assert "--lr-policy plateau watches the val L1" in capsys.readouterr().out




def _batch():
    g = torch.Generator().manual_seed(1)
    return {k: torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for k in "AB"}


def test_the_gradient_penalties_of_a_linear_critic_are_exact():
    import contextlib

    from img2img.losses import gradient_penalty, r1_penalty

    critic = torch.nn.Conv2d(3, 1, 32, bias=False)  # D(x) = <w, x>: its input gradient is w everywhere
    torch.nn.init.normal_(critic.weight, 0.0, 0.1)
    norm = critic.weight.norm().item()
    x, y = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    assert gradient_penalty(critic, x, y, contextlib.nullcontext).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    assert r1_penalty(critic, x, contextlib.nullcontext).item() == pytest.approx(norm ** 2, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pix2pix", "cyclegan", "cut"])
def test_wgangp_and_r1_train_every_method_under_bf16(method):
    m = tiny_method(method, gan_mode="wgangp", r1_gamma=10.0, amp=True)
    before = {k: v.clone() for k, v in m.networks.state_dict().items() if k.startswith("D")}
    losses, bad = guarded_step(m, _batch())
    assert not bad and all(torch.isfinite(v) for v in losses.values())
    assert any(k.endswith("_gp") for k in losses) and any(k.endswith("_r1") for k in losses)
    after = m.networks.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_the_penalised_step_never_reads_a_tensor_on_the_host(monkeypatch):
    m = tiny_method("pix2pix", gan_mode="wgangp", r1_gamma=10.0)
    guarded_step(m, _batch())  # the first step creates the optimizer state

    def forbidden(*_):
        raise AssertionError("a tensor was read on the host during the step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    guarded_step(m, _batch())


def test_cuda_graphs_refuse_the_double_backward_in_one_line():
    from img2img.config import SpeedConfig
    from img2img.errors import Img2ImgError
    from img2img.training.cuda_graph import check_capturable

    with pytest.raises(Img2ImgError, match="--cuda-graphs does not capture the double backward through D"):
        check_capturable(SpeedConfig(cuda_graphs=True), torch.device("cuda"), tiny_method("cyclegan", gan_mode="wgangp", r1_gamma=10.0))


@pytest.fixture
def photos(tmp_path):
    """Colour photos (smooth random blobs) in one folder, and two more in val/."""
    import numpy as np
    from helpers import random_image

    rng = np.random.default_rng(0)
    for folder, count in ((tmp_path / "photos", 4), (tmp_path / "photos" / "val", 2)):
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            random_image(rng, 40, 40).save(folder / f"{i}.png")
    return tmp_path / "photos"


TINY_COLOUR = ["--model", "colorization", "--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--size", "32",
               "--load-size", "36", "--num-workers", "0", "--device", "cpu"]


def test_colourisation_trains_on_a_folder_of_photos_and_resumes_bit_for_bit(photos, tmp_path):
    from helpers import assert_resume_is_bitwise
    from PIL import Image

    resumed = assert_resume_is_bitwise(["--data", str(photos), *TINY_COLOUR], tmp_path, stop=2, end=5)
    model = checkpoint_config(resumed).model
    assert (model.in_channels, model.out_channels, model.in_range, model.out_range) == (1, 2, (0.0, 100.0),
                                                                                        (-110.0, 110.0))
    grid = Image.open(sorted((tmp_path / "straight" / "samples").glob("*.png"))[-1])
    assert grid.mode == "RGB" and grid.width > 3 * 32  # grey input | output | original


@pytest.mark.slow
def test_a_grey_photo_comes_back_in_colour_with_its_own_lightness(photos, tmp_path):
    import numpy as np
    from PIL import Image

    from img2img.io.lab import rgb_to_lab
    from img2img.translate.catalog import describe_checkpoint
    from img2img.translate.translator import Translator

    main(["train", "--data", str(photos), "--out", str(tmp_path / "run"), "--max-steps", "3", *TINY_COLOUR])
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    grey = Image.open(photos / "val" / "0.png").convert("L").resize((70, 45))  # any size, one channel
    pixels = np.repeat(np.asarray(grey)[..., None], 3, axis=2)
    main(["export", str(checkpoint), str(tmp_path / "colour.onnx"), "--format", "onnx"])
    outputs = []
    for model in (checkpoint, tmp_path / "colour.onnx"):
        out = Translator.from_checkpoint(model, device="cpu").translate_pixels(grey)
        assert out.shape == (45, 70, 3) and out.dtype == np.uint8
        assert np.abs(rgb_to_lab(out)[..., 0] - rgb_to_lab(pixels)[..., 0]).max() <= 0.5  # 8-bit rounding only
        assert np.abs(rgb_to_lab(out)[..., 1:]).mean() > 0.1  # colour was added
        outputs.append(out.astype(int))
    assert np.abs(outputs[0] - outputs[1]).max() <= 2
    assert describe_checkpoint(checkpoint).label == "latest: black-and-white photo → colour"


def test_lambda_gp_and_r1_gamma_weight_their_penalties():
    weighted = {}
    for lambda_gp, r1_gamma in ((10.0, 10.0), (20.0, 5.0)):
        m = tiny_method("pix2pix", gan_mode="wgangp", r1_gamma=10.0)
        m.cfg.lambda_gp, m.cfg.r1_gamma = lambda_gp, r1_gamma
        torch.manual_seed(5)  # the same interpolation points
        losses, _ = guarded_step(m, _batch())
        weighted[lambda_gp] = (losses["D_gp"].item(), losses["D_r1"].item())
    assert weighted[20.0][0] == pytest.approx(2 * weighted[10.0][0], rel=1e-4)
    assert weighted[20.0][1] == pytest.approx(0.5 * weighted[10.0][1], rel=1e-4)
