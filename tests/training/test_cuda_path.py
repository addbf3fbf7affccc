"""The CUDA-only features, tested for what the CPU can show: CUDA graphs' preconditions and
refusals, and what `--deterministic` switches on (its padding included)."""
import dataclasses
import functools
import os

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_CYCLEGAN, TINY_PIX2PIX, tiny_method

from img2img.cli import main
from img2img.config import SpeedConfig, TrainConfig
from img2img.methods import build_method, new_run_config
from img2img.models.padding import pad2d
from img2img.persist.checkpoint import load_checkpoint
from img2img.training.cuda_graph import check_capturable, make_capturable
from img2img.training.guard import guarded_step
from img2img.training.schedule import lr_factor

CUDA = torch.device("cuda")


@pytest.fixture
def deterministic_afterwards_off():
    """--deterministic switches process-wide settings: put them back for the other tests."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
    if saved[3] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)




def test_cuda_graphs_on_the_cpu_are_refused_in_one_line(paired_dir, tmp_path, capsys):
    code = main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "1",
                 *TINY_PIX2PIX, "--cuda-graphs"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.splitlines()[-1] == "error: --cuda-graphs needs CUDA; this run is on cpu"
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoints").exists()


def test_cuda_graphs_refuse_what_a_captured_step_cannot_hold():
    graphs = SpeedConfig(cuda_graphs=True)
    check_capturable(graphs, CUDA, tiny_method("pix2pix"))
    check_capturable(graphs, CUDA, tiny_method("cyclegan"))
    with pytest.raises(Exception, match="CUT draws its flips on the host"):
        check_capturable(graphs, CUDA, tiny_method("cut"))
    with pytest.raises(Exception, match="drop --no-fused-adam"):
        check_capturable(SpeedConfig(cuda_graphs=True, fused_adam=False), CUDA)
    with pytest.raises(Exception, match="leave --compile off"):
        check_capturable(SpeedConfig(cuda_graphs=True, compile=True), CUDA)


def test_a_decayed_learning_rate_reaches_the_tensor_a_captured_step_reads():
    """The graph holds the optimizer's lr tensor, not its value: the schedulers must fill that
    same tensor, and fused Adam must step with what it holds."""
    m = tiny_method("pix2pix", amp=False)
    make_capturable(m)
    opt = m.optimizers["G"]
    # torch refuses to capture an optimizer step unless its groups say they are capturable.
    assert all(g["capturable"] for o in m.optimizers.values() for g in o.param_groups)
    captured = opt.param_groups[0]["lr"]
    # Epochs 0 and 1 of a 1 + 1 schedule: factor 1, then 0.5; after the decay, 0.
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, 1, 1))
    batch = {k: torch.rand(1, 3, 32, 32) * 2 - 1 for k in "AB"}
    guarded_step(m, batch)
    scheduler.step()
    assert opt.param_groups[0]["lr"] is captured and captured.item() == pytest.approx(1e-4)
    scheduler.step()
    assert opt.param_groups[0]["lr"] is captured and captured.item() == 0.0
    before = {k: v.clone() for k, v in m.netG.state_dict().items()}
    guarded_step(m, batch)
    weights = [k for k, _ in m.netG.named_parameters()]
    assert all(torch.equal(before[k], m.netG.state_dict()[k]) for k in weights)
    # Checkpoints keep plain floats, which every optimizer accepts.
    assert m.state_dict()["optimizers"]["G"]["param_groups"][0]["lr"] == 0.0


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_padding_under_deterministic_algorithms_is_f_pad_through_slices(mode, deterministic_afterwards_off):
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    weights = torch.randn(2, 3, 13, 15)
    plain = F.pad(x, (3, 3, 3, 3), mode=mode)
    (grad_plain,) = torch.autograd.grad((plain * weights).sum(), x)
    torch.use_deterministic_algorithms(True)
    sliced = pad2d(x, 3, mode)
    (grad_sliced,) = torch.autograd.grad((sliced * weights).sum(), x)
    assert type(sliced.grad_fn).__name__ == "CatBackward0"  # not CUDA's atomic-add backward
    assert torch.equal(sliced, plain)
    torch.testing.assert_close(grad_sliced, grad_plain, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_deterministic_runs_store_the_flag_and_repeat_bitwise(unpaired_dir, tmp_path, deterministic_afterwards_off):
    states = []
    for run in ("one", "two"):
        out = tmp_path / run
        assert main(["train", "--data", str(unpaired_dir), "--out", str(out), "--max-steps", "2", *TINY_CYCLEGAN,
                     "--deterministic"]) == 0
        states.append(load_checkpoint(out / "checkpoints" / "latest.pt"))
    assert states[0]["config"]["train"]["deterministic"] is True
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    one, two = (s["method"]["networks"] for s in states)
    assert all(torch.equal(one[net][k], two[net][k]) for net in one for k in one[net])


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/gpu_check.py runs it)")


def cuda_method(method: str, **speed):
    torch.manual_seed(0)
    improved = method == "pix2pix-improved"
    cfg = new_run_config("pix2pix" if improved else method,
                               train=TrainConfig(device="cuda", speed=SpeedConfig(**speed)))
    cfg.model.netG = "resnet_6blocks" if method == "cyclegan" else "unet_32"
    cfg.model.ngf = cfg.model.ndf = 8
    cfg.model.dropout = False
    if improved:  # the bundled model's recipe: every ingredient that adds state or steps to capture
        cfg.model.netD, cfg.model.num_d, cfg.model.n_layers_d = "multiscale", 2, 2
        cfg.model.spectral_norm, cfg.model.norm = True, "instance"
        cfg = dataclasses.replace(cfg, method_config=dataclasses.replace(cfg.method_config, ema=0.99, lambda_feat=10.0))
    return build_method(cfg, CUDA)


def cuda_batches(n: int, size: int = 2):
    g = torch.Generator().manual_seed(1)
    return [{k: (torch.rand(size, 3, 32, 32, generator=g) * 2 - 1).to(CUDA) for k in "AB"} for _ in range(n)]


@needs_cuda
@pytest.mark.parametrize("method,amp", [("pix2pix", False), ("cyclegan", False), ("pix2pix-improved", True)])
def test_cuda_graph_steps_train_as_the_eager_steps(method, amp):
    from img2img.training.cuda_graph import CapturedStep

    runs = []
    for graphs in (False, True):
        m = cuda_method(method, amp=amp, cuda_graphs=graphs)
        step = CapturedStep(m) if graphs else functools.partial(guarded_step, m)
        runs.append([{k: v.item() for k, v in step(b)[0].items()} for b in cuda_batches(7)])
        if method == "pix2pix-improved":
            runs[-1].append({f"ema{i}": p.sum().item() for i, p in enumerate(m.netG_ema.parameters())})
    # cuDNN may pick other algorithms under capture, and rounds differently: fp32 convolutions run
    # in TF32 (10-bit mantissa) by default, bf16 (7 bits) under amp. An H100 differed by 1.04e-3
    # after 7 CycleGAN steps in fp32.
    for eager, replayed in zip(*runs):
        assert replayed == pytest.approx(eager, rel=2e-2 if amp else 5e-3, abs=1e-4 if amp else 0)


@needs_cuda
def test_a_cuda_graph_run_trains_samples_saves_and_resumes(paired_dir, tmp_path):
    args = [*TINY_PIX2PIX[:-2], "--device", "cuda", "--batch-size", "2", "--cuda-graphs", "--amp", "--norm", "instance",
            "--ema", "0.99", "--netD", "multiscale", "--num-d", "2", "--n-layers-d", "2", "--lambda-feat", "10",
            "--spectral-norm", "--sample-every", "3"]
    out = tmp_path / "run"
    assert main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "8", *args]) == 0
    assert main(["train", "--data", str(paired_dir), "--out", str(out), "--resume", "auto", "--max-steps", "14",
                 *args]) == 0
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["progress"]["step"] == 14 and list((out / "samples").glob("*.png"))
    assert all(torch.isfinite(v).all() for v in state["method"]["networks"]["G_ema"].values())


@needs_cuda
def test_cuda_graph_runs_a_partial_batch_eagerly_and_sees_the_decayed_rate():
    from img2img.training.cuda_graph import CapturedStep

    m = cuda_method("pix2pix", cuda_graphs=True)
    step = CapturedStep(m)
    for b in cuda_batches(5):
        step(b)
    assert step.graph is not None
    partial = cuda_batches(1, size=1)[0]
    losses, _ = step(partial)
    assert losses is not step.static_out[0]
    for opt in m.optimizers.values():
        opt.param_groups[0]["lr"].fill_(0.0)
    before = [p.clone() for p in m.netG.parameters()]
    step(cuda_batches(1)[0])
    assert all(torch.equal(a, b) for a, b in zip(before, m.netG.parameters()))


@needs_cuda
def test_deterministic_cuda_runs_and_a_resumed_run_are_bitwise_equal(paired_dir, tmp_path,
                                                                      deterministic_afterwards_off):
    args = [*TINY_PIX2PIX[:-2], "--device", "cuda", "--deterministic", "--batch-size", "2"]
    for run, steps in (("one", "4"), ("two", "4"), ("resumed", "2")):
        assert main(["train", "--data", str(paired_dir), "--out", str(tmp_path / run), "--max-steps", steps,
                     *args]) == 0
    assert main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "resumed"), "--resume", "auto",
                 "--max-steps", "4", *args]) == 0
    states = [load_checkpoint(tmp_path / run / "checkpoints" / "latest.pt")["method"]["networks"]
              for run in ("one", "two", "resumed")]
    for other in states[1:]:
        assert all(torch.equal(states[0][n][k], other[n][k]) for n in states[0] for k in states[0][n])
