"""The fast path changes speed, not results: bf16 against fp32, the device-side skip of
non-finite steps, steps that never wait for the device, and the `bench` command."""
import json

import pytest
import torch

from img2img.cli import main
from img2img.config import RunConfig, SpeedConfig, TrainConfig
from img2img.methods import build_method

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tiny(method: str, dropout: bool = True, **train) -> object:
    torch.manual_seed(0)
    device = train.pop("device", "cpu")
    cfg = RunConfig.for_method(method, train=TrainConfig(device=device, speed=SpeedConfig(**train)))
    cfg.model.dropout = dropout and cfg.model.dropout
    cfg.model.netG = "unet_32" if method == "pix2pix" else "resnet_6blocks"
    cfg.model.ngf = cfg.model.ndf = 8
    return build_method(cfg, torch.device(device))


def batches(n: int, device: str = "cpu", size: int = 32):
    g = torch.Generator().manual_seed(1)
    return [{k: (torch.rand(2, 3, size, size, generator=g) * 2 - 1).to(device) for k in "AB"} for _ in range(n)]


# bf16 keeps fp32's exponent range, so it changes losses by rounding only: measured on CPU,
# at most 0.2% for pix2pix and 1.2% for CycleGAN's LSGAN terms over three steps.
BF16_TOLERANCE = {"pix2pix": 0.01, "cyclegan": 0.03}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_bf16_autocast_gives_the_fp32_losses_within_tolerance(method, device):
    runs = {}
    for amp in (False, True):
        m = tiny(method, amp=amp, device=device)
        dtypes = []
        m.networks[m.generator_keys["AtoB"]].register_forward_hook(lambda mod, i, out, seen=dtypes: seen.append(out.dtype))
        runs[amp] = [{k: v.item() for k, v in m.guarded_step(b)[0].items()} for b in batches(3, device)]
        assert set(dtypes) == {torch.bfloat16 if amp else torch.float32}
    for fp32, bf16 in zip(runs[False], runs[True]):
        for k in fp32:
            assert bf16[k] == pytest.approx(fp32[k], rel=BF16_TOLERANCE[method]), k


@pytest.mark.parametrize("fused", [True, False])
def test_a_non_finite_step_changes_no_weight_optimizer_state_or_batchnorm_statistic(fused):
    m = tiny("pix2pix", fused_adam=fused)
    good, nan = batches(2)
    m.guarded_step(good)
    before = {k: v.clone() for k, v in m.networks.state_dict().items()}
    opt_before = [s["step"].clone() for s in m.optimizers["G"].state.values()]
    _, bad = m.guarded_step({**nan, "B": torch.full_like(nan["B"], float("nan"))})
    assert bad
    after = m.networks.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [s["step"] for s in m.optimizers["G"].state.values()] == opt_before


def test_a_non_finite_cyclegan_step_leaves_no_nan_in_the_image_pools():
    m = tiny("cyclegan")
    m.guarded_step(batches(1)[0])
    kept = [im.clone() for im in m.pool_fake_a.images]
    nan = {k: torch.full((2, 3, 32, 32), float("nan")) for k in "AB"}
    _, bad = m.guarded_step(nan)
    assert bad
    pool = m.pool_fake_a.images
    assert all(torch.isfinite(im).all() for im in pool)
    assert all(torch.equal(a, b) for a, b in zip(pool, kept))


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
    m = tiny(method)
    b = batches(1)[0]
    m.guarded_step(b)  # the first step creates the optimizer state
    host_reads_forbidden()
    m.guarded_step(b)


def test_the_unfused_fallback_reads_the_loss_on_the_host(host_reads_forbidden):
    m = tiny("pix2pix", fused_adam=False)
    b = batches(1)[0]
    m.guarded_step(b)
    host_reads_forbidden()
    with pytest.raises(AssertionError, match="read on the host"):
        m.guarded_step(b)


def test_device_defaults_are_the_measured_ones():
    cpu = SpeedConfig().resolve(torch.device("cpu"))
    assert (cpu.amp, cpu.channels_last, cpu.compile, cpu.fused_adam, cpu.cudnn_benchmark) == (
        False, False, False, True, False)
    cuda = SpeedConfig().resolve(torch.device("cuda"))
    assert (cuda.amp, cuda.channels_last, cuda.fused_adam, cuda.cudnn_benchmark) == (True, True, True, True)
    assert SpeedConfig(amp=True).resolve(torch.device("cpu")).amp
    graphs = SpeedConfig(cuda_graphs=True).resolve(torch.device("cuda"))
    assert graphs.compile and graphs.compile_mode == "reduce-overhead"


def test_channels_last_training_gives_the_contiguous_losses():
    # Without dropout: its random mask follows the memory layout, so it would differ.
    m = tiny("pix2pix", dropout=False)
    plain = [{k: v.item() for k, v in m.guarded_step(b)[0].items()} for b in batches(2)]
    m = tiny("pix2pix", dropout=False, channels_last=True)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in m.netG.parameters() if p.dim() == 4)
    fast = [{k: v.item() for k, v in m.guarded_step(b)[0].items()} for b in batches(2)]
    for p, f in zip(plain, fast):
        assert f == pytest.approx(p, rel=1e-4)


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
        main(["bench", "--model", "cyclegan", "--size", "64", "--batch-size", batch, "--device", "cpu",
              "--steps", "1", "--warmup", "0", "--json"])
        flops.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["flops_per_iter"])
    assert flops[1] == pytest.approx(2 * flops[0], rel=0.01)
