"""The fast path changes speed, not results: bf16 against fp32, the device-side skip of
non-finite steps, steps that never wait for the device, and the `bench` command."""
import json

import pytest
import torch
from helpers import tiny_method

from img2img.cli import main
from img2img.config import SpeedConfig
from img2img.methods import METHODS
from img2img.training.bench import peak_precision
from img2img.training.guard import guarded_step

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])




def batches(n: int, device: str = "cpu", size: int = 32, channels: tuple[int, int] = (3, 3),
            second_source: bool = False):
    """`n` batches of 2 random A and B images in [-1, 1], of the model's (input, output) channels
    (and a second A, "A2", for a method that takes one)."""
    g = torch.Generator().manual_seed(1)
    keys = [("A", channels[0]), ("B", channels[1]), *([("A2", channels[0])] if second_source else [])]
    return [{k: (torch.rand(2, c, size, size, generator=g) * 2 - 1).to(device) for k, c in keys} for _ in range(n)]


def loss_values(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: v.item() for k, v in losses.items()}


@pytest.mark.slow
@pytest.mark.parametrize("amp,channels_last", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_under_every_speed_switch(method, amp, channels_last):
    """Each switch runs every registered method: the networks compute in bf16 under amp, the
    losses stay finite fp32, and the same bf16 step from the same state is bitwise repeatable
    (what a tolerance tuned on one CPU could not promise)."""
    runs = []
    for _ in range(2):
        m = tiny_method(method, amp=amp, channels_last=channels_last)
        dtypes = []
        generator = m.networks[m.spec.generator_keys["AtoB"]]
        # Translations only: CUT's generator also returns encoder features, the first of which
        # is the padded (fp32) input.
        def record(module, inputs, out) -> None:
            if isinstance(out, torch.Tensor):
                dtypes.append(out.dtype)
        generator.register_forward_hook(record)
        steps = [guarded_step(m, b)[0] for b in batches(2, channels=(m.model_cfg.in_channels, m.model_cfg.out_channels),
                                                        second_source=m.spec.second_source)]
        assert {torch.bfloat16 if amp else torch.float32} == set(dtypes)
        for losses in steps:
            assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values()), losses
        runs.append([loss_values(losses) for losses in steps])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("fused", [True, False])
def test_a_non_finite_step_changes_no_weight_optimizer_state_or_batchnorm_statistic(fused):
    m = tiny_method("pix2pix", fused_adam=fused)
    good, nan = batches(2)
    guarded_step(m, good)
    before = {k: v.clone() for k, v in m.networks.state_dict().items()}
    opt_before = [s["step"].clone() for s in m.optimizers["G"].state.values()]
    _, bad = guarded_step(m, {**nan, "B": torch.full_like(nan["B"], float("nan"))})
    assert bad
    after = m.networks.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [s["step"] for s in m.optimizers["G"].state.values()] == opt_before


def test_a_non_finite_cyclegan_step_leaves_no_nan_in_the_image_pools():
    m = tiny_method("cyclegan")
    guarded_step(m, batches(1)[0])
    kept = m.pool_fake_a.stored().clone()
    nan = {k: torch.full((2, 3, 32, 32), float("nan")) for k in "AB"}
    _, bad = guarded_step(m, nan)
    assert bad
    assert torch.isfinite(m.pool_fake_a.images).all()
    assert torch.equal(m.pool_fake_a.stored(), kept)


@pytest.fixture
def host_reads_forbidden(monkeypatch):
    """Reading a tensor's value on the host (what waits for a GPU) raises inside the block."""
    def forbidden(*_):
        raise AssertionError("a tensor was read on the host during the step")

    def guard():
        for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
            monkeypatch.setattr(torch.Tensor, name, forbidden)
    return guard


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_a_fused_training_step_never_reads_a_tensor_on_the_host(method, host_reads_forbidden):
    m = tiny_method(method)
    b = batches(1)[0]
    guarded_step(m, b)  # the first step creates the optimizer state
    host_reads_forbidden()
    guarded_step(m, b)


def test_the_unfused_fallback_reads_the_loss_on_the_host(host_reads_forbidden):
    m = tiny_method("pix2pix", fused_adam=False)
    b = batches(1)[0]
    guarded_step(m, b)
    host_reads_forbidden()
    with pytest.raises(AssertionError, match="read on the host"):
        guarded_step(m, b)


def test_device_defaults_are_the_measured_ones():
    def switches(device, batch_size=1, generator="unet"):
        speed = SpeedConfig().resolve(device, batch_size, generator)
        return speed.amp, speed.channels_last, speed.compile, speed.fused_adam, speed.cudnn_benchmark
    assert switches("cpu", 64) == (False, False, False, True, False)
    # Batch 1 on CUDA: plain fp32 was faster than bf16 with channels_last.
    assert switches("cuda") == (False, False, False, True, True)
    assert switches("cuda", 64) == (True, True, False, True, True)
    # channels_last lost with ResNet generators (reflection padding, instance norm).
    assert switches("cuda", 16, "resnet_9blocks") == (True, False, False, True, True)
    assert SpeedConfig(amp=True).resolve("cpu").amp
    assert SpeedConfig(channels_last=True).resolve("cuda", 16, "resnet_9blocks").channels_last


def test_channels_last_training_gives_the_contiguous_losses():
    # Without dropout: its random mask follows the memory layout, so it would differ.
    m = tiny_method("pix2pix", dropout=False)
    plain = [{k: v.item() for k, v in guarded_step(m, b)[0].items()} for b in batches(2)]
    m = tiny_method("pix2pix", dropout=False, channels_last=True)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in m.netG.parameters() if p.dim() == 4)
    fast = [{k: v.item() for k, v in guarded_step(m, b)[0].items()} for b in batches(2)]
    for p, f in zip(plain, fast):
        assert f == pytest.approx(p, rel=1e-4)


@pytest.mark.slow
def test_bench_json_reports_the_figures_with_the_papers_default_model(capsys):
    assert main(["bench", "--model", "pix2pix", "--device", "cpu", "--steps", "1", "--warmup", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("sec_per_iter", "images_per_s", "peak_mem_mb", "flops_per_iter", "achieved_tflops"):
        assert result[key] > 0, key
    # unet_256 + 70x70 PatchGAN at 256 px: about 87 GFLOP per image for one step.
    assert 80e9 < result["flops_per_iter"] < 95e9
    s = result["settings"]
    assert (s["model"], s["size"], s["batch_size"], s["device"], s["amp"]) == ("pix2pix", 256, 1, "cpu", False)
    assert result["images_per_s"] == pytest.approx(1 / result["sec_per_iter"])


@pytest.mark.slow
def test_bench_counts_cyclegan_flops_in_proportion_to_the_batch(capsys):
    flops = []
    for batch in ("1", "2"):
        main(["bench", "--model", "cyclegan", "--size", "32", "--batch-size", batch, "--device", "cpu",
              "--steps", "1", "--warmup", "0", "--json"])
        flops.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["flops_per_iter"])
    assert flops[1] == pytest.approx(2 * flops[0], rel=0.01)


@pytest.mark.slow
def test_bench_feeds_colourisation_its_one_channel_input_and_two_channel_target(capsys):
    assert main(["bench", "--model", "colorization", "--size", "32", "--device", "cpu", "--steps", "1",
                 "--warmup", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sec_per_iter"] > 0


def test_fp32_steps_on_cuda_are_held_to_the_tf32_peak_their_convolutions_run_at():
    assert peak_precision(torch.device("cuda"), amp=True) == "bf16"
    assert peak_precision(torch.device("cuda"), amp=False) == "tf32"  # cuDNN's default
    assert peak_precision(torch.device("cpu"), amp=False) == "fp32"
