"""CUT and FastCUT: PatchNCE, the projection heads, and training through the one trainer."""
import csv
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_CUT, tiny_method

from img2img.cli import main
from img2img.losses import patch_nce_loss
from img2img.methods import new_run_config, run_config_from_dict
from img2img.methods.cut import FastCUT
from img2img.training.guard import guarded_step
from img2img.translate.translator import Translator

# Also used by test_training's exact-resume test.




def test_patch_nce_of_a_hand_checkable_case():
    # Two patches, orthogonal unit features, keys equal to queries: row p has the positive
    # q_p·k_p = 1 and one negative q_p·k_other = 0 (its own key is masked out of the negatives).
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    t = 0.07
    by_hand = math.log(1 + math.exp(-1 / t))  # -log(e^{1/t} / (e^{1/t} + e^0))
    assert patch_nce_loss(q, q.clone(), t) == pytest.approx(torch.full((1, 2), by_hand), abs=1e-7)
    # Keys swapped: each positive is now the orthogonal one and the negative the match.
    swapped = q.flip(1)
    assert patch_nce_loss(q, swapped, t)[0, 0].item() == pytest.approx(math.log(1 + math.exp(1 / t)), rel=1e-6)


def test_patch_nce_falls_as_queries_align_with_their_keys():
    g = torch.Generator().manual_seed(0)
    keys = F.normalize(torch.randn(2, 64, 16, generator=g), dim=-1)
    noise = F.normalize(torch.randn(2, 64, 16, generator=g), dim=-1)
    losses = [patch_nce_loss(F.normalize(keys + w * noise, dim=-1), keys).mean().item() for w in (4.0, 1.0, 0.25)]
    assert losses[0] > losses[1] > losses[2]


def test_keys_get_no_gradient():
    q = F.normalize(torch.randn(1, 8, 4), dim=-1).requires_grad_()
    k = F.normalize(torch.randn(1, 8, 4), dim=-1).requires_grad_()
    patch_nce_loss(q, k).mean().backward()
    assert q.grad is not None and k.grad is None


def test_flip_equivariance_flips_the_query_features_back():
    m = tiny_method("cut", flip_equivariance=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    plain = m.query_features(x, flipped=False)
    flipped = m.query_features(x, flipped=True)
    assert all(torch.equal(f, p.flip(3)) for f, p in zip(flipped, plain))


def test_projection_heads_exist_from_the_start_in_the_optimizer_and_the_state_dict():
    m = tiny_method("cut")
    head_params = list(m.netF.parameters())
    assert len(m.netF.heads) == 5 and head_params
    optimized = {id(p) for group in m.optimizers["G"].param_groups for p in group["params"]}
    assert all(id(p) in optimized for p in head_params)
    assert any(k.startswith("heads.") for k in m.state_dict()["networks"]["F"])
    # Widths follow the layers: the padded input (3), the two downsampling convs, residual blocks.
    assert [h[0].in_features for h in m.netF.heads] == [3, 16, 32, 32, 32]


def test_fastcut_is_cut_with_the_papers_fastcut_settings():
    fast = tiny_method("fastcut")
    assert isinstance(fast, FastCUT)
    assert (fast.cfg.lambda_nce, fast.cfg.nce_idt, fast.cfg.flip_equivariance) == (10.0, False, True)
    train = new_run_config("fastcut").train
    assert (train.epochs, train.epochs_decay) == (150, 50)
    losses = fast.training_step({"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1})
    assert "NCE" in losses and "NCE_Y" not in losses


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cut", "fastcut"])
def test_a_short_real_run_has_finite_losses_a_grid_and_translates(method, unpaired_dir, tmp_path):
    out = tmp_path / "run"
    flags = [f if f != "cut" else method for f in TINY_CUT]
    assert main(["train", "--data", str(unpaired_dir), "--out", str(out), "--max-steps", "4", *flags]) == 0
    rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["kind"] == "train"]
    assert len(rows) == 4
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("D_real", "D_fake", "G_GAN", "NCE"))
    assert (out / "samples" / "step_0000004.png").is_file()
    translator = Translator.from_checkpoint(out / "checkpoints" / "latest.pt", device="cpu")
    assert translator.directions == ["AtoB"]
    assert translator.translate_tensor(torch.zeros(1, 3, 36, 44)).shape == (1, 3, 36, 44)


def test_cut_needs_a_resnet_generator(unpaired_dir, tmp_path, capsys):
    flags = [f if f != "resnet_6blocks" else "unet_32" for f in TINY_CUT]
    assert main(["train", "--data", str(unpaired_dir), "--out", str(tmp_path / "run"), *flags]) == 2
    assert "takes its features from a ResNet generator" in capsys.readouterr().err


def test_cut_takes_the_papers_layers_with_and_without_antialiasing():
    from img2img.models import ResNetGenerator

    assert ResNetGenerator(antialias=True).encoder_layers == [0, 4, 8, 12, 16]  # the reference's indices
    assert ResNetGenerator(antialias=False).encoder_layers == [0, 4, 7, 10, 14]
    assert tiny_method("cut").layers == [0, 4, 8, 12, 16]  # CUT's default generator is anti-aliased


@pytest.mark.parametrize("h,w", [(32, 32), (36, 44)])
def test_blurred_resampling_keeps_constants_and_shapes(h, w):
    from img2img.models.antialias import BlurDownsample, BlurUpsample

    x = torch.full((1, 4, h, w), 0.3)
    assert torch.allclose(BlurDownsample(4)(x), torch.full((1, 4, h // 2, w // 2), 0.3))
    assert torch.allclose(BlurUpsample(4)(x), torch.full((1, 4, 2 * h, 2 * w), 0.3))
    from img2img.models import ResNetGenerator

    g = ResNetGenerator(ngf=4, n_blocks=2, antialias=True)
    assert g(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)
    assert not any("kernel" in k for k in g.state_dict())  # constants, not weights


def test_a_non_finite_cut_step_changes_no_weight_and_no_optimizer_state():
    m = tiny_method("cut")
    good = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    guarded_step(m, good)
    before = {k: v.clone() for k, v in m.networks.state_dict().items()}
    steps = [s["step"].clone() for s in m.optimizers["G"].state.values()]
    _, bad = guarded_step(m, {**good, "A": torch.full_like(good["A"], float("nan"))})
    assert bool(bad)
    assert all(torch.equal(v, before[k]) for k, v in m.networks.state_dict().items())
    assert all(torch.equal(s["step"], old) for s, old in zip(m.optimizers["G"].state.values(), steps))


@pytest.mark.parametrize("size", [32, 70, 256])
def test_cuts_discriminator_is_the_cut_codes_antialiased_patchgan(size):
    from img2img.models import PatchDiscriminator
    from img2img.models.antialias import BlurDownsample

    d = tiny_method("cut").netD
    convs = [m for m in d.model if isinstance(m, torch.nn.Conv2d)]
    assert all(c.stride == (1, 1) for c in convs)  # each downsampling is a blur after a stride-1 conv
    assert sum(isinstance(m, BlurDownsample) for m in d.model) == 3
    plain, blurred = (PatchDiscriminator(3, ndf=4, antialias=a) for a in (False, True))
    x = torch.randn(1, 3, size, size)
    assert plain(x).shape == blurred(x).shape == (1, 1, *(2 * [PatchDiscriminator.output_size(size)]))


def test_a_cut_checkpoint_from_before_antialias_d_keeps_its_plain_discriminator():
    config = new_run_config("cut").to_dict()
    del config["model"]["antialias_d"]  # as saved before the setting existed
    assert not run_config_from_dict(config).model.antialias_d
    assert new_run_config("cut").model.antialias_d and new_run_config("fastcut").model.antialias_d


def test_projections_are_divided_by_their_norm_plus_1e_7_as_in_the_cut_code():
    m = tiny_method("cut")
    features = [torch.randn(1, w, 8, 8) * 1e-3 for w in (3, 16, 32, 32, 32)]
    with torch.no_grad():
        for head in m.netF.heads:  # a small head, as at initialisation: its outputs' norms near 1e-5
            head[2].weight.mul_(1e-3), head[2].bias.zero_()
        raw = [h(f.flatten(2).transpose(1, 2)[:, :4]) for h, f in zip(m.netF.heads, features)]
        projected = m.netF(features, [torch.arange(4)] * 5)
    for r, p in zip(raw, projected):
        norm = r.norm(dim=-1, keepdim=True)
        assert torch.allclose(p, r / (norm + 1e-7), rtol=1e-5)
        assert (p.norm(dim=-1) < 0.999).any()  # where F.normalize would give exactly 1
