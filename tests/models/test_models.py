import pytest
import torch

from img2img.config import ModelConfig
from img2img.methods import METHODS
from img2img.models import PatchDiscriminator, PixelDiscriminator, ResNetGenerator, UNetGenerator, build_generator
from img2img.models.init import init_weights
from img2img.models.norm import norm_layer


@pytest.mark.parametrize("num_downs,size", [(5, 32), (6, 64), (7, 128), (8, 256)])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("dropout", [True, False])
def test_unet_output_shape_equals_input_shape(num_downs, size, norm, dropout):
    g = UNetGenerator(3, 3, num_downs=num_downs, ngf=4, norm=norm_layer(norm), dropout=dropout).eval()
    x = torch.randn(1, 3, size, size)
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0  # Tanh output


@pytest.mark.parametrize("n_blocks", [6, 9])
@pytest.mark.parametrize("h,w", [(32, 32), (36, 44), (64, 48)])
def test_resnet_output_shape_equals_input_for_multiples_of_4(n_blocks, h, w):
    g = ResNetGenerator(3, 3, ngf=4, n_blocks=n_blocks)
    assert g(torch.randn(2, 3, h, w)).shape == (2, 3, h, w)


def test_generator_channels_can_differ():
    g = UNetGenerator(1, 3, num_downs=5, ngf=4)
    assert g(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("n_layers,size,out", [(1, 64, 30), (2, 64, 14), (3, 64, 6), (3, 256, 30)])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_patch_discriminator_output_shape(n_layers, size, out, norm):
    d = PatchDiscriminator(6, ndf=4, n_layers=n_layers, norm=norm_layer(norm))
    assert d(torch.randn(2, 6, size, size)).shape == (2, 1, out, out)
    assert PatchDiscriminator.output_size(size, n_layers) == out


def test_pixel_discriminator_judges_each_pixel():
    d = PixelDiscriminator(6, ndf=4)
    assert d(torch.randn(2, 6, 20, 24)).shape == (2, 1, 20, 24)


def receptive_field(net: torch.nn.Module, size: int = 160) -> int:
    """Width of the input region that influences the centre output logit."""
    net.eval()
    x = torch.randn(1, 3, size, size, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    cols = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero()
    return int(cols.max() - cols.min() + 1)


def test_patchgan_receptive_field_is_70_for_three_layers():
    d = init_weights(PatchDiscriminator(3, ndf=8, n_layers=3, norm=norm_layer("none")))
    assert receptive_field(d) == 70


def test_pixel_discriminator_receptive_field_is_1():
    assert receptive_field(PixelDiscriminator(3, ndf=4, norm=norm_layer("none")), size=16) == 1


def test_default_generators_have_canonical_parameter_counts():
    # Counts from ../shared/reference/canonical_state_dicts.txt, so published weights can map 1:1.
    assert sum(p.numel() for p in build_generator(ModelConfig(netG="unet_256")).parameters()) == 54_413_955
    cyc = build_generator(METHODS["cyclegan"].default_model())
    assert sum(p.numel() for p in cyc.parameters()) == 11_378_179


def test_init_weights_is_normal_with_std_002():
    torch.manual_seed(0)
    g = init_weights(UNetGenerator(3, 3, num_downs=8, ngf=16))
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.02)


def test_per_image_batch_norm_uses_each_images_statistics_and_keeps_running_ones():
    torch.manual_seed(0)
    g = init_weights(UNetGenerator(3, 3, num_downs=5, ngf=4, dropout=False)).eval()
    x = torch.randn(3, 3, 32, 32)
    running = {k: v.clone() for k, v in g.state_dict().items()}
    with torch.no_grad():
        together = g(x)
        alone = torch.cat([g(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    # Equals train-mode BatchNorm at batch size 1 (the canonical test-time behaviour).
    g_train = UNetGenerator(3, 3, num_downs=5, ngf=4, dropout=False)
    g_train.load_state_dict(g.state_dict())
    g_train.train()
    with torch.no_grad():
        assert torch.allclose(g_train(x[:1]), alone[:1], atol=1e-5)
    assert all(torch.equal(v, running[k]) for k, v in g.state_dict().items())
    # The same weights with plain BatchNorm use the running statistics in eval mode: they differ.
    g_running = UNetGenerator(3, 3, num_downs=5, ngf=4, dropout=False, norm=norm_layer("batch", "running")).eval()
    g_running.load_state_dict(g.state_dict())
    with torch.no_grad():
        assert not torch.allclose(g_running(x), together, atol=1e-3)
