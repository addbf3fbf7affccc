import math

import pytest
import torch

from img2img.losses import GANLoss

LOGITS = torch.tensor([[-2.0, 0.0], [1.0, 3.0]])


def bce(x, y):
    return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))


def test_vanilla_is_bce_on_logits():
    values = LOGITS.flatten().tolist()
    assert GANLoss("vanilla")(LOGITS, True).item() == pytest.approx(sum(bce(v, 1) for v in values) / 4, rel=1e-6)
    assert GANLoss("vanilla")(LOGITS, False).item() == pytest.approx(sum(bce(v, 0) for v in values) / 4, rel=1e-6)


def test_lsgan_is_mean_squared_distance_to_label():
    assert GANLoss("lsgan")(LOGITS, True).item() == pytest.approx((9 + 1 + 0 + 4) / 4)
    assert GANLoss("lsgan")(LOGITS, False).item() == pytest.approx((4 + 0 + 1 + 9) / 4)


def test_hinge_discriminator_and_generator_terms():
    hinge = GANLoss("hinge")
    assert hinge(LOGITS, True).item() == pytest.approx((3 + 1 + 0 + 0) / 4)  # relu(1 - x)
    assert hinge(LOGITS, False).item() == pytest.approx((0 + 1 + 2 + 4) / 4)  # relu(1 + x)
    assert hinge(LOGITS, True, for_discriminator=False).item() == pytest.approx(-2.0 / 4)


def test_vanilla_is_stable_for_large_logits():
    assert torch.isfinite(GANLoss("vanilla")(torch.tensor([100.0, -100.0]), True))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")
