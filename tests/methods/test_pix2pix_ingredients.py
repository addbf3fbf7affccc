"""The optional pix2pix ingredients beyond the paper: EMA of G, multiscale D, feature matching,
spectral norm, two learning rates."""
import json

import pytest
import torch
from helpers import TINY_PIX2PIX, tiny_method

from img2img.cli import main
from img2img.losses import feature_matching_loss
from img2img.methods import METHODS
from img2img.models.discriminators import MultiscaleDiscriminator, PatchDiscriminator
from img2img.persist.checkpoint import load_checkpoint
from img2img.translate.translator import Translator


def batch():
    g = torch.Generator().manual_seed(0)
    return {"A": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1}


def test_ema_moves_each_weight_by_one_minus_decay_towards_the_generator():
    method = tiny_method("pix2pix", n_layers_d=2, ema=0.9)
    before = {k: v.clone() for k, v in method.netG_ema.state_dict().items()}
    method.training_step(batch())
    after, generator = method.netG_ema.state_dict(), method.netG.state_dict()
    for name, _ in method.netG.named_parameters():
        assert torch.allclose(after[name], 0.9 * before[name] + 0.1 * generator[name], atol=1e-7)
        assert not torch.equal(after[name], generator[name])
    running = [k for k in after if k.endswith("running_mean")]
    assert running and all(torch.equal(after[k], generator[k]) for k in running)
    assert method.generator("AtoB") is method.netG_ema


def test_ema_of_a_generator_without_buffers_trains():
    method = tiny_method("pix2pix", n_layers_d=2, norm="instance", ema=0.9)
    assert not list(method.netG.buffers())
    before = {k: v.clone() for k, v in method.netG_ema.state_dict().items()}
    method.training_step(batch())
    after = method.netG_ema.state_dict()
    assert all(not torch.equal(after[k], before[k]) for k in before)


def test_multiscale_discriminator_judges_each_scale_of_an_average_pooled_input():
    d = MultiscaleDiscriminator(6, num_d=3, ndf=8, n_layers=2)
    outputs = d(torch.zeros(2, 6, 128, 96))
    sides = [(128, 96), (64, 48), (32, 24)]
    assert [tuple(o.shape) for o in outputs] == [
        (2, 1, PatchDiscriminator.output_size(h, 2), PatchDiscriminator.output_size(w, 2)) for h, w in sides]
    with_features = d(torch.zeros(1, 6, 64, 64), features=True)
    assert len(with_features) == 3 and all(len(features) == 3 for _, features in with_features)


def test_feature_matching_weights_layers_by_four_over_their_count_and_scales_equally():
    ones, zeros = torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    # One scale, two layers each off by 1: 2 x (4/2) x 1.
    assert feature_matching_loss([[ones, ones]], [[zeros, zeros]]).item() == pytest.approx(4.0)
    # Two scales, one of them matching: the other's 4 x 1, halved.
    assert feature_matching_loss([[ones, ones], [zeros, zeros]], [[zeros, zeros], [zeros, zeros]]).item() == \
        pytest.approx(2.0)
    # Real features are targets: no gradient flows into them.
    real = torch.zeros(1, 2, 4, 4, requires_grad=True)
    feature_matching_loss([[ones.clone().requires_grad_()]], [[real]]).backward()
    assert real.grad is None


def test_generator_step_adds_weighted_feature_matching():
    method = tiny_method("pix2pix", n_layers_d=2, lambda_feat=10.0, netD="multiscale")
    losses = method.training_step(batch())
    assert {"G_feat", "G_GAN", "G_L1", "D_real", "D_fake"} <= losses.keys()
    assert torch.isfinite(losses["G_feat"]) and losses["G_feat"] > 0


def test_spectral_norm_keeps_each_discriminator_weight_at_unit_spectral_norm():
    torch.manual_seed(0)
    d = PatchDiscriminator(6, ndf=8, n_layers=2, spectral_norm=True).train()
    for _ in range(30):  # power iterations, one per training forward
        d(torch.randn(1, 6, 64, 64))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_discriminator_learning_rate_is_its_own():
    method = tiny_method("pix2pix", n_layers_d=2, lr_d=4e-4)
    assert method.optimizers["D"].param_groups[0]["lr"] == 4e-4
    assert method.optimizers["G"].param_groups[0]["lr"] == 2e-4


def test_ema_generator_is_what_a_checkpoint_translates_and_exports(paired_dir, tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "3", "--ema", "0.5", *TINY_PIX2PIX])
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert {"G", "G_ema", "D"} <= state["method"]["networks"].keys()
    translator = Translator.from_checkpoint(out / "checkpoints" / "latest.pt", device="cpu", engine="torch")
    loaded = translator.generator("AtoB").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state["method"]["networks"]["G_ema"].items())
    assert not all(torch.equal(loaded[k], v) for k, v in state["method"]["networks"]["G"].items())
    main(["export", "--fp32", str(out / "checkpoints" / "latest.pt"), str(tmp_path / "g.pt")])
    exported = load_checkpoint(tmp_path / "g.pt")["method"]["networks"]
    assert list(exported) == ["G"]
    assert all(torch.equal(exported["G"][k], v) for k, v in state["method"]["networks"]["G_ema"].items())


def test_bad_ema_decay_is_refused():
    with pytest.raises(ValueError, match="--ema 1.5"):
        tiny_method("pix2pix", n_layers_d=2, ema=1.5)


def test_improved_recipe_fills_in_its_settings_unless_given(tmp_path):
    from img2img.errors import Img2ImgError
    from img2img.training import config_for_run

    improved = METHODS["pix2pix"].recipes["improved"]
    cfg = config_for_run({"method_config": {"recipe": "improved"}}, data="d", out=str(tmp_path / "a")).cfg
    for name, value in improved["model"].items():
        assert getattr(cfg.model, name) == value
    for name, value in improved["method_config"].items():
        assert getattr(cfg.method_config, name) == value
    explicit = config_for_run({"method_config": {"recipe": "improved", "ema": 0.99}}, data="d", out=str(tmp_path)).cfg
    assert explicit.method_config.ema == 0.99
    paper = config_for_run({}, data="d", out=str(tmp_path)).cfg
    assert (paper.method_config.recipe, paper.method_config.ema, paper.model.netD) == ("paper", 0.0, "patch")
    with pytest.raises(Img2ImgError, match="--recipe best: pix2pix has paper, improved"):
        config_for_run({"method_config": {"recipe": "best"}}, data="d", out=str(tmp_path))


def test_recipe_cannot_change_when_resuming(paired_dir, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "1", *TINY_PIX2PIX])
    assert main(["train", "--resume", "auto", "--out", str(out), "--max-steps", "2", "--recipe", "improved"]) != 0
    assert "--recipe improved cannot change when resuming" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_times_a_recipe_with_its_extra_networks(capsys):
    flops = {}
    for recipe in ("paper", "improved"):
        assert main(["bench", "--model", "pix2pix", "--recipe", recipe, "--size", "64", "--device", "cpu",
                     "--steps", "1", "--warmup", "0", "--json"]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["settings"]["recipe"] == recipe
        flops[recipe] = report["flops_per_iter"]
    # A second discriminator at half scale, a no-grad pass of D on the real pair for feature matching.
    assert flops["improved"] > 1.05 * flops["paper"]


def test_bench_refuses_a_recipe_the_method_lacks(capsys):
    assert main(["bench", "--model", "cyclegan", "--recipe", "improved", "--size", "32", "--device", "cpu",
                 "--steps", "1", "--warmup", "0"]) != 0
    assert "--recipe improved" in capsys.readouterr().err
