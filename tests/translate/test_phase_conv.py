"""Transposed convolutions rewritten as phase convolutions: the same outputs to float rounding,
per layer shape and per generator, exported with no ConvTranspose, and quantised to int8 whole."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import make_checkpoint, random_image
from torch import nn

from img2img.models.antialias import BlurUpsample
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
from img2img.translate.onnx_graph import export_generator
from img2img.translate.phase_conv import PhaseBlurUpsample, PhaseConvTranspose2d, rewritable, rewrite_transposed
from img2img.translate.precision import META_FLOAT_LAYERS, onnx_metadata
from img2img.translate.translator import Translator


@pytest.mark.parametrize("kernel,stride,padding,output_padding,groups", [
    (4, 2, 1, 0, 1),  # the pix2pix U-Net's
    (3, 2, 1, 1, 1),  # the ResNet generators'
    (4, 2, 1, 0, 4),  # grouped
    (5, 2, 2, 1, 1),  # taps that differ between phases
    (6, 3, 2, 1, 1),  # stride 3
])
def test_a_transposed_convolution_equals_its_phase_convolutions(kernel, stride, padding, output_padding, groups):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(8, 12, kernel, stride=stride, padding=padding, output_padding=output_padding,
                               groups=groups)
    x = torch.randn(2, 8, 7, 10)  # odd and even sizes
    with torch.no_grad():
        expected, got = layer(x), PhaseConvTranspose2d.of(layer)(x)
    assert got.shape == expected.shape and (got - expected).abs().max() < 1e-5


def test_the_pix2pix_upsampling_is_one_convolution_and_a_grouped_one_a_convolution_per_phase():
    assert PhaseConvTranspose2d.of(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)).merged
    assert not PhaseConvTranspose2d.of(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=4)).merged


def test_the_anti_aliased_upsampling_equals_its_phase_convolutions():
    blur, x = BlurUpsample(5), torch.randn(1, 5, 6, 9)
    assert (blur(x) - PhaseBlurUpsample(blur)(x)).abs().max() < 1e-5


def test_layers_the_rewrite_cannot_express_are_left_alone():
    assert not rewritable(4, 2, 1, 1)  # an output that is not a whole number of phases
    assert not rewritable(4, 2, 1, 0, dilation=2)
    net = nn.Sequential(nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, output_padding=1))
    assert isinstance(rewrite_transposed(net)[0], nn.ConvTranspose2d)


@pytest.mark.parametrize("method,model", [
    ("pix2pix", dict(netG="unet_32", ngf=8)),
    ("cyclegan", dict(netG="resnet_6blocks", ngf=8)),
    ("cut", dict(netG="resnet_6blocks", ngf=8, antialias=True)),
])
def test_every_generator_exports_without_a_transposed_convolution_and_the_same_outputs(method, model, tmp_path):
    state = load_checkpoint(make_checkpoint(method, tmp_path / "model.pt", model=model))
    generator, cfg = load_generators(state)["AtoB"], checkpoint_config(state)
    rewritten = rewrite_transposed(generator)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = generator(x).numpy()
        assert np.abs(rewritten(x).numpy() - expected).max() < 1e-5
    path = export_generator(rewritten, cfg, "AtoB", tmp_path / "phase.onnx")
    assert "ConvTranspose" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"image": x.numpy()})[0] - expected).max() < 1e-4


@pytest.mark.parametrize("method,model", [("pix2pix", dict(netG="unet_32", ngf=8)),
                                          ("cyclegan", dict(netG="resnet_6blocks", ngf=8))])
def test_int8_quantises_every_layer_but_the_first_and_the_few_the_gate_keeps_in_float(method, model, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("IMG2IMG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "calibration").mkdir()
    for i in range(6):
        random_image(np.random.default_rng(i), 32, 32).save(tmp_path / "calibration" / f"{i}.png")
    checkpoint = make_checkpoint(method, tmp_path / "model.pt", model=model, size=32)
    translator = Translator.from_checkpoint(checkpoint, device="cpu", precision="int8",
                                            calibration=tmp_path / "calibration")
    graph = onnx.load(str(Path(translator.onnx["AtoB"].path))).graph
    produced_by = {out: node.op_type for node in graph.node for out in node.output}
    convolutions = [n for n in graph.node if n.op_type == "Conv"]
    quantised = [n for n in convolutions if produced_by.get(n.input[0]) == "DequantizeLinear"]
    modules = {n.name.rpartition("/")[0] for n in convolutions}
    float_modules = {n.name.rpartition("/")[0] for n in convolutions if n not in quantised}
    assert "ConvTranspose" not in {n.op_type for n in graph.node}
    kept = int(onnx_metadata(Path(translator.onnx["AtoB"].path))[META_FLOAT_LAYERS])
    assert len(float_modules) == 1 + kept and len(modules) > 6  # transposed ones quantised too
    image = random_image(np.random.default_rng(9), 32, 32)
    fp32 = Translator.from_checkpoint(checkpoint, device="cpu", precision="fp32").translate_pixels(image)
    assert np.abs(translator.translate_pixels(image).astype(int) - fp32.astype(int)).mean() < 6
