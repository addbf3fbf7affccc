"""Our training steps are the papers' code's, bit for bit (benchmarks/parity.py): from the
reference's initial weights, on the same batches, with every random draw made identical and the
reference's Adam (`--no-fused-adam`), with 8-filter networks (the reference's smallest U-Net is
unet_128, so the U-Nets train at 128 px, the ResNets at 32)."""
import pytest
from helpers import ROOT, load_benchmark, make_paired

REFERENCE = ROOT.parent / "shared" / "reference"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (REFERENCE / "bench_reference.py").is_file(),
                                 reason=f"the reference code is not at {REFERENCE}")]
UNET = ["--netG", "unet_128", "--ngf", "8", "--ndf", "8"]
RESNET = ["--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8"]


@pytest.fixture(scope="module")
def parity():
    return load_benchmark("parity")


# CycleGAN with 5-image pools, run past their filling, so that their draws are replayed; FastCUT
# long enough that its flip coin lands both ways.
@pytest.mark.parametrize("method,steps,size,extra,replayed", [
    ("pix2pix", 10, 128, UNET, {}),
    ("colorization", 10, 128, UNET, {}),
    ("cyclegan", 12, 32, [*RESNET, "--pool_size", "5"], {"pool draws": 24}),
    ("cut", 4, 32, RESNET, {"patch permutations": 40}),
    ("fastcut", 12, 32, RESNET, {"patch permutations": 60, "flip coins": 12}),
    # UNSB: its time-conditioned networks (its own ResNet), 10 steps at every one of its 5 time steps.
    ("unsb", 10, 32, ["--ngf", "8", "--ndf", "8"], {"patch permutations": 100}),
])
def test_training_steps_equal_the_reference_bit_for_bit(parity, method, steps, size, extra, replayed):
    result = parity.run(method, steps, size, fused_adam=False, extra=extra)
    assert result["parameters_and_buffers"] == 0 and result["adam_moments"] == 0, result["worst_tensors"]
    # Every loss equal; pix2pix's L1 up to the rounding of λ·L1 (the reference logs it weighted).
    assert max(result["losses_per_step"]) < 1e-7, result["largest_loss_difference"]
    assert {k: v for k, v in result["replayed"].items() if k in replayed} == replayed
    if method == "fastcut":
        assert 0 < result["replayed"]["flips"] < steps
    if method == "unsb":
        assert set(result["time_steps"]) == set(range(5))
        # Its test.py's translation in 1 to 5 steps, from the same noise.
        assert result["translation_in_1_to_T_steps"] == [0.0] * 5


def test_the_trainer_end_to_end_trains_as_the_reference_fed_its_batches(parity, tmp_path):
    """Our Trainer, with its data loader and loop, on files: the same steps as the reference's
    model given the batches ours drew, bit for bit."""
    data = make_paired(tmp_path / "pairs", n_train=5, n_val=1, size=150)
    result = parity.run_trainer(data, steps=8, size=128, extra=UNET)
    assert result == {"steps": 8, "largest_loss_difference": 0.0, "largest_weight_difference": 0.0}
