"""DDP training under torchrun on CPU (gloo), two ranks."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY_CYCLEGAN, TINY_PIX2PIX, make_paired, make_unpaired

from img2img.persist.checkpoint import load_checkpoint

WORKER = Path(__file__).with_name("distributed_worker.py")


# Each test starts torchrun processes.
pytestmark = pytest.mark.slow


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


TINY_FLAGS = {"pix2pix": TINY_PIX2PIX, "cyclegan": TINY_CYCLEGAN,
              "cut": [*(f if f != "cyclegan" else "cut" for f in TINY_CYCLEGAN), "--num-patches", "32"],
              "unsb": [*(f if f != "cyclegan" else "unsb" for f in TINY_CYCLEGAN), "--num-patches", "32"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every two-rank run of this module in one torchrun, one after another: {name: its folder},
    and the finished torchrun."""
    root = tmp_path_factory.mktemp("ddp")
    flags, folders = [], {}

    def add(name: str, *run_flags: str) -> None:
        folders[name] = root / name
        flags.extend([*(["--and-then"] if flags else []), "--out", str(folders[name]), *run_flags])

    for method in TINY_FLAGS:
        data = make_paired(root / f"data_{method}", n_train=6) if method == "pix2pix" else \
            make_unpaired(root / f"data_{method}", n_a=6, n_b=5)
        add(method, "--data", str(data), "--max-steps", "4", "--save-every", "2", "--keep", "0", *TINY_FLAGS[method])
    broken = make_paired(root / "data_broken", n_train=6)
    (broken / "train" / "5.png").write_bytes(b"not a png")  # in order: rank 1's third sample
    add("unreadable", "--data", str(broken), "--max-steps", "4", "--serial-batches", *TINY_PIX2PIX)
    add("wgangp_r1", "--data", str(root / "data_pix2pix"), "--max-steps", "3", "--gan-mode", "wgangp",
        "--r1-gamma", "10", *TINY_PIX2PIX)
    done = torchrun(str(WORKER), *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    return folders, done


@pytest.mark.parametrize("method", list(TINY_FLAGS))
def test_two_ranks_end_with_identical_weights_and_only_rank_0_writes(method, runs):
    folders, done = runs
    out = folders[method]
    # Each 4-step run (the methods' and the unreadable one) says it once: rank 0 alone.
    assert done.stdout.count("finished at step 4") == len(TINY_FLAGS) + 1
    rank0, rank1 = (torch.load(out / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    # 6 pairs shared by 2 ranks at batch 1: an epoch is 3 steps.
    assert (state["progress"]["step"], state["progress"]["epoch"]) == (4, 1)
    saved = {f"{net}.{k}": v for net, sd in state["method"]["networks"].items() for k, v in sd.items()}
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    # Each rank's randomness is kept, for an exact resume of every rank.
    assert len(state["ranks"]) == 2
    # The epoch end at step 3 comes 1 step after the save at 2: no full checkpoint of its own.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest.pt", "step_0000002.pt", "step_0000004.pt"]


def test_sync_bn_on_cpu_is_refused_with_a_clear_error(tmp_path, monkeypatch, capsys):
    """What each rank does first under torchrun (its environment set as torchrun sets it): a
    one-line error before joining any process group, so no rank waits for another."""
    from img2img.cli import main

    data = make_paired(tmp_path / "data")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1", "--sync-bn",
                 *TINY_PIX2PIX]) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: --sync-bn needs CUDA: PyTorch's SyncBatchNorm does not run on CPU"]
    assert not torch.distributed.is_initialized()


def test_a_rank_whose_batch_is_unreadable_stays_in_step_with_the_others(runs):
    folders, done = runs
    out = folders["unreadable"]
    assert "[rank 1] warning: skipped " in done.stderr and "5.png: cannot read image" in done.stderr
    rank0, rank1 = (torch.load(out / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["step"] == 4


def test_wgangp_and_r1_train_two_ranks_to_identical_weights(runs):
    """Their double backward goes through D's DistributedDataParallel wrapper."""
    folders, _ = runs
    out = folders["wgangp_r1"]
    rank0, rank1 = (torch.load(out / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert (state["config"]["method_config"]["gan_mode"], state["progress"]["step"]) == ("wgangp", 3)
