"""Checkpoints written by older versions still load, translate and resume.

The fixtures were written at commit 2b02544 (format 1) by `img2img train` on conftest's
make_paired/make_unpaired data (ngf/ndf 4, 32 px, 3 steps); expected.json holds what that
version computed from them. Compared to 1e-6 relative: float32 kernels differ between CPUs in the
last bits (an AMD EPYC gives sums 2e-8 away from the ones written), while a wrong upgrade moves
them by far more."""
import json
import shutil

import pytest
import torch
from helpers import CHECKPOINT_FIXTURES, make_paired

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.methods import new_run_config, run_config_from_dict
from img2img.persist.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint, upgrade_config_v1
from img2img.translate.translator import Translator

FIXTURES = CHECKPOINT_FIXTURES
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_a_format_1_checkpoint_translates_as_it_did_when_written(method):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    translator = Translator.from_checkpoint(FIXTURES / f"{method}.pt", device="cpu", engine="torch")
    assert translator.cfg.method == method
    for direction, expected in EXPECTED[method].items():
        assert translator.translate_tensor(x, direction).double().sum().item() == pytest.approx(expected, rel=1e-6)


def test_a_format_1_checkpoint_is_upgraded_to_the_current_config():
    state = load_checkpoint(FIXTURES / "cyclegan.pt")
    assert state["format_version"] == FORMAT_VERSION
    cfg = run_config_from_dict(state["config"])
    assert cfg.method == "cyclegan" and cfg.model.netG == "resnet_6blocks"
    assert (cfg.method_config.gan_mode, cfg.method_config.lambda_cycle, cfg.method_config.pool_size) == ("lsgan", 10.0, 50)
    # Runs from before format 3 resized with cv2's area filter, and resume with it.
    assert cfg.data.resize == "area" and new_run_config("pix2pix").data.resize == "bicubic"
    assert cfg.train.speed.fused_adam and cfg.train.speed.amp is None


@pytest.mark.slow
def test_a_format_1_pix2pix_run_resumes_to_the_weights_that_version_reached(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURES / "pix2pix.pt", run / "checkpoints" / "step_0000003.pt")
    data = make_paired(tmp_path / "paired")
    assert main(["train", "--resume", str(run / "checkpoints" / "step_0000003.pt"), "--out", str(run),
                 "--data", str(data), "--num-workers", "0", "--device", "cpu", "--max-steps", "5"]) == 0
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    g = state["method"]["networks"]["G"]
    total = sum(v.double().abs().sum().item() for v in g.values() if v.is_floating_point())
    assert total == pytest.approx(EXPECTED["pix2pix_resumed_to_5_G_sum"], rel=1e-6)


def test_amp_of_a_checkpoint_from_before_the_fast_path_keeps_meaning_cuda_only():
    old = torch.load(FIXTURES / "pix2pix.pt", weights_only=True)["config"]
    for key in ("channels_last", "compile", "cuda_graphs", "fused_adam", "cudnn_benchmark", "sync_bn"):
        old["train"].pop(key)  # absent before the fast path
    old["train"]["amp"] = True  # that version's default: bf16 autocast on CUDA, nothing on CPU
    upgraded = run_config_from_dict(upgrade_config_v1(old))
    assert upgraded.train.speed.amp is None  # the measured default: off on CPU, on for CUDA when batched
    assert not upgraded.train.speed.resolve("cpu", batch_size=16).amp
    assert upgraded.train.speed.resolve("cuda", batch_size=16).amp


def test_a_checkpoint_from_a_newer_version_is_refused_clearly(tmp_path):
    state = load_checkpoint(FIXTURES / "pix2pix.pt")
    save_checkpoint(tmp_path / "new.pt", state)
    raw = torch.load(tmp_path / "new.pt", weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "newer.pt")
    with pytest.raises(Img2ImgError, match="newer than this img2img reads"):
        load_checkpoint(tmp_path / "newer.pt")
