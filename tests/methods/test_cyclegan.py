import numpy as np
import pytest
import torch
from helpers import TINY_CYCLEGAN, random_image, tiny_method
from PIL import Image

from img2img.cli import main
from img2img.config import ModelConfig
from img2img.methods import build_method, new_run_config
from img2img.methods.cyclegan import ImagePool
from img2img.persist.checkpoint import load_checkpoint


def batch(n=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, size, size, generator=g) * 2 - 1, "B": torch.rand(n, 3, size, size, generator=g) * 2 - 1}


def images(n, value_offset=0):
    return torch.arange(n, dtype=torch.float32).add(value_offset).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def test_pool_returns_new_images_while_filling_and_caps_its_size():
    pool = ImagePool(size=5)
    out = pool.query(images(3))
    assert torch.equal(out, images(3))
    out = pool.query(images(2, value_offset=3))
    assert torch.equal(out, images(2, value_offset=3))
    assert torch.equal(pool.stored(), images(5))
    pool.query(images(10, value_offset=100))
    assert len(pool.stored()) == 5


def test_full_pool_swaps_about_half_the_images_with_uniformly_drawn_slots():
    torch.manual_seed(123)
    pool = ImagePool(size=50)
    pool.query(images(50))
    new = images(4000, value_offset=1000)
    out = pool.query(new)[:, 0, 0, 0]
    swapped = out != new[:, 0, 0, 0]
    # Binomial(4000, 0.5): 0.47-0.53 is more than 3.5 standard deviations either side.
    assert 0.47 < swapped.float().mean().item() < 0.53
    # A swapped-out image is one stored earlier, never an invented one or a later one.
    position = torch.arange(4000, dtype=torch.float32) + 1000
    earlier = (out < 50) | ((out >= 1000) & (out < position))
    assert bool(earlier[swapped].all())
    assert bool((out[~swapped] == position[~swapped]).all())
    # The first 50 swaps each return an original image: every slot is drawn alike.
    originals = out[swapped & (out < 50)]
    assert len(originals.unique()) > 40


def test_pool_of_size_zero_passes_images_through():
    pool = ImagePool(size=0)
    x = images(4)
    assert pool.query(x) is x and len(pool.stored()) == 0


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def changed(net, before):
    return any(not torch.equal(p, q) for p, q in zip(net.parameters(), before))


def test_discriminator_step_changes_no_generator_weights_and_vice_versa():
    method = tiny_method("cyclegan")
    b = batch()
    g_before = snapshot(method.netG_A) + snapshot(method.netG_B)
    d_before = snapshot(method.netD_A) + snapshot(method.netD_B)
    with torch.no_grad():
        fake_b, fake_a = method.netG_A(b["A"]), method.netG_B(b["B"])
    method.discriminator_step(b["A"], b["B"], fake_a, fake_b)
    gens = list(method.netG_A.parameters()) + list(method.netG_B.parameters())
    discs = list(method.netD_A.parameters()) + list(method.netD_B.parameters())
    assert all(torch.equal(p, q) for p, q in zip(gens, g_before))
    assert any(not torch.equal(p, q) for p, q in zip(discs, d_before))

    d_before = [p.detach().clone() for p in discs]
    d_grads = [p.grad.clone() for p in discs]
    g_before = [p.detach().clone() for p in gens]
    method.generator_step(b["A"], b["B"])
    assert all(torch.equal(p, q) for p, q in zip(discs, d_before))
    assert any(not torch.equal(p, q) for p, q in zip(gens, g_before))
    # D's gradients are off during the generator update: its .grad is left as the D step made it.
    assert all(torch.equal(p.grad, g) for p, g in zip(discs, d_grads))


def test_pix2pix_steps_touch_only_their_own_network():
    torch.manual_seed(0)
    method = build_method(new_run_config("pix2pix", model=ModelConfig(netG="unet_32", ngf=8, ndf=8)), torch.device("cpu"))
    b = batch()
    g0, d0 = snapshot(method.netG), snapshot(method.netD)
    fake = method.netG(b["A"])
    method.discriminator_step(b["A"], b["B"], fake)
    assert not changed(method.netG, g0) and changed(method.netD, d0)
    d1 = snapshot(method.netD)
    method.generator_step(b["A"], b["B"], fake)
    assert changed(method.netG, g0) and not changed(method.netD, d1)


def count_calls(net):
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("lambda_identity,expected_calls", [(0.5, 3), (0.0, 2)])
def test_zero_identity_weight_skips_identity_forwards(lambda_identity, expected_calls):
    method = tiny_method("cyclegan", lambda_identity=lambda_identity)
    calls_a, calls_b = count_calls(method.netG_A), count_calls(method.netG_B)
    losses = method.training_step(batch())
    assert len(calls_a) == expected_calls and len(calls_b) == expected_calls
    assert (losses["idt_A"].item() == 0.0) == (lambda_identity == 0.0)


def test_training_step_logs_every_cyclegan_loss():
    losses = tiny_method("cyclegan").training_step(batch())
    assert set(losses) == {"G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B"}


def standardised(image) -> torch.Tensor:
    """Zero mean, fixed spread per channel: instance norm discards each image's mean colour and
    contrast, so only with these fixed can a perfect cycle exist."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 127.5 - 1
    x = x - x.mean(dim=(1, 2), keepdim=True)
    return (x / x.std(dim=(1, 2), keepdim=True) * 0.4).clamp(-1, 1)


@pytest.mark.slow
def test_cycle_loss_falls_on_colour_inverted_pairs():
    """B images are colour-inverted A images: the cycle loss must halve within 150 steps."""
    method = tiny_method("cyclegan", pool_size=10, ngf=16)
    rng = np.random.default_rng(0)
    pool = [standardised(random_image(rng, 32, 32)) for _ in range(4)]
    cycle = []
    for step in range(150):
        a = pool[step % 4].unsqueeze(0)
        b = -pool[(step * 3 + 1) % 4].unsqueeze(0)
        losses = method.training_step({"A": a, "B": b})
        cycle.append((losses["cycle_A"] + losses["cycle_B"]).item())
    first, last = sum(cycle[:10]) / 10, sum(cycle[-10:]) / 10
    assert last <= 0.5 * first, (first, last)


def test_checkpoint_round_trip_restores_the_pools(unpaired_dir, tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", str(unpaired_dir), "--out", str(out), "--max-steps", "3", *TINY_CYCLEGAN])
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    saved = state["method"]["extra"]["pool_fake_b"]["images"]
    assert saved.shape == (3, 3, 32, 32)
    restored = tiny_method("cyclegan")
    restored.load_state_dict(state["method"])
    assert torch.equal(restored.pool_fake_b.stored(), saved)


def test_both_directions_translate_through_the_cli(unpaired_dir, tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", str(unpaired_dir), "--out", str(out), "--max-steps", "1", *TINY_CYCLEGAN])
    ckpt = str(out / "checkpoints" / "latest.pt")
    for direction, src in (("AtoB", "testA"), ("BtoA", "testB")):
        rc = main(["translate", "--checkpoint", ckpt, str(unpaired_dir / src), str(tmp_path / direction),
                   "--direction", direction, "--device", "cpu"])
        assert rc == 0
        outputs = sorted((tmp_path / direction).iterdir())
        assert len(outputs) == 2 and Image.open(outputs[0]).size == (32, 32)
    a2b = np.asarray(Image.open(sorted((tmp_path / "AtoB").iterdir())[0]))
    b2a = np.asarray(Image.open(sorted((tmp_path / "BtoA").iterdir())[0]))
    assert not np.array_equal(a2b, b2a)  # two different generators
