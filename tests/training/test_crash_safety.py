import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import TINY_PIX2PIX

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.persist.checkpoint import load_checkpoint, save_checkpoint
from img2img.training.checkpoint_files import load_newest_valid


def test_keep_prunes_old_numbered_checkpoints_but_not_latest(paired_dir, tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "7", "--save-every", "2",
          "--keep", "2", *TINY_PIX2PIX])
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["latest.pt", "step_0000006.pt", "step_0000007.pt"]
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["step"] == 7


def test_corrupt_latest_falls_back_to_the_previous_checkpoint(paired_dir, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "5", "--save-every", "2",
          *TINY_PIX2PIX])
    newest = out / "checkpoints" / "step_0000005.pt"
    # latest.pt is a hard link to the newest numbered file: truncating it corrupts both.
    with open(out / "checkpoints" / "latest.pt", "r+b") as f:
        f.truncate(100)
    assert newest.stat().st_size == 100
    path, state = load_newest_valid(out / "checkpoints", warn=print)
    assert "skipping unusable checkpoint" in capsys.readouterr().out
    assert state["progress"]["step"] == 4 and path.name == "step_0000004.pt"


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "payload": argparse.Namespace(cmd="rm -rf /")}, path)
    with pytest.raises(Img2ImgError) as refused:
        load_checkpoint(path)
    # The reason, not torch's preamble about its `weights_only` default.
    message = str(refused.value)
    assert message.startswith(f"{path}: refused") and "argparse.Namespace" in message
    assert "weights_only" not in message and "\n" not in message


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"config": {}, "w": torch.ones(3)})
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(Img2ImgError, match="disk full"):
        save_checkpoint(path, {"config": {}, "w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary file left


def inject_nan_losses(monkeypatch, steps: set[int]):
    """Make the named (1-based) training steps return a NaN loss after really running them."""
    from img2img.methods.pix2pix import Pix2Pix

    original = Pix2Pix.training_step
    count = {"n": 0}

    def step(self, batch):
        count["n"] += 1
        if count["n"] in steps:
            batch = {**batch, "A": torch.full_like(batch["A"], float("nan"))}
        return original(self, batch)

    monkeypatch.setattr(Pix2Pix, "training_step", step)


@pytest.mark.slow
def test_a_nan_step_is_skipped_and_leaves_weights_finite(paired_dir, tmp_path, monkeypatch, capsys):
    inject_nan_losses(monkeypatch, {3})
    out = tmp_path / "run"
    assert main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "5", *TINY_PIX2PIX]) == 0
    assert "step 3 had a non-finite loss and was skipped" in capsys.readouterr().err
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["progress"]["bad_steps"] == 1
    for net in state["method"]["networks"].values():
        assert all(torch.isfinite(t).all() for t in net.values() if t.is_floating_point())


def test_too_many_nan_steps_in_a_row_stop_the_run(paired_dir, tmp_path, monkeypatch, capsys):
    inject_nan_losses(monkeypatch, set(range(2, 100)))
    rc = main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "50",
               "--max-bad-steps", "3", *TINY_PIX2PIX])
    assert rc == 2
    assert "4 steps in a row had non-finite losses" in capsys.readouterr().err


def test_truncated_jpeg_is_a_clear_error(tmp_path):
    from PIL import Image

    from img2img.errors import ImageReadError
    from img2img.io.readers import load_rgb

    Image.new("RGB", (64, 64), "red").save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.jpg: cannot read image"):
        load_rgb(tmp_path / "t.jpg")


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [False, True], ids=["main process", "process group"])
def test_sigterm_saves_a_checkpoint_and_resume_continues_from_it(paired_dir, tmp_path, whole_group, capsys):
    """Also when the signal reaches the data-loading workers too, as from Ctrl+C in a terminal,
    `timeout` or a scheduler: they must not die under the main process."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "img2img", "train", "--data", str(paired_dir), "--out", str(out),
           "--max-steps", "100000", "--save-every", "100000", *TINY_PIX2PIX, "--num-workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = out / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) > 3):
        time.sleep(0.2)
    if whole_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "resume with: img2img train --resume auto" in stdout
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    step = load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["step"]
    assert step >= 3
    assert main(["train", "--resume", "auto", "--out", str(out), "--max-steps", str(step + 2)]) == 0
    assert f"resumed from {out / 'checkpoints' / 'latest.pt'} at step {step}" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["step"] == step + 2


def test_a_background_checkpoint_holds_the_state_at_submission_not_later_updates(tmp_path):
    from img2img.training.background_writer import BackgroundWriter, to_host

    weights = torch.ones(1000)
    writer = BackgroundWriter()
    snapshot = to_host({"config": {}, "w": weights})
    writer.submit(lambda: save_checkpoint(tmp_path / "a.pt", snapshot), "checkpoint a.pt")
    weights.add_(1)  # training goes on updating its tensors in place
    writer.wait()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], torch.ones(1000))


@pytest.mark.slow
def test_a_failed_background_write_is_one_line_and_keeps_the_previous_checkpoint(paired_dir, tmp_path, monkeypatch,
                                                                                 capsys):
    from img2img.training import checkpointing as checkpointing_module

    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "2", *TINY_PIX2PIX])
    before = (out / "checkpoints" / "latest.pt").read_bytes()

    def full_disk(path, state):
        raise Img2ImgError(f"{path}: disk full while writing; the previous file is intact")

    monkeypatch.setattr(checkpointing_module, "save_checkpoint", full_disk)
    # Step 4 ends the epoch: its write fails in the background; the final write is tried again
    # (not taken as done) and, failing too, ends the run with one line.
    assert main(["train", "--data", str(paired_dir), "--out", str(out), "--resume", "auto", "--max-steps", "4",
                 "--save-every", "0", *TINY_PIX2PIX]) != 0
    err = capsys.readouterr().err
    assert err.count("epoch_0001_step_0000004.pt: disk full while writing; the previous file is intact; "
                     "training goes on\n") == 1
    assert "error: " in err and "step_0000004.pt: disk full" in err.split("error: ")[1]
    assert (out / "checkpoints" / "latest.pt").read_bytes() == before


@pytest.mark.slow
def test_training_returns_only_after_its_pending_checkpoint_writes(paired_dir, tmp_path, monkeypatch):
    from img2img.training import checkpointing as checkpointing_module

    slow_save = checkpointing_module.save_checkpoint

    def save_slowly(path, state):
        time.sleep(0.3)
        slow_save(path, state)

    monkeypatch.setattr(checkpointing_module, "save_checkpoint", save_slowly)
    out = tmp_path / "run"
    # Epoch ends at steps 4 and 8 write in the background; a stop (max-steps) must wait for them.
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "9", "--save-every", "0", "--keep", "0",
          *TINY_PIX2PIX])
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["epoch_0001_step_0000004.pt", "epoch_0002_step_0000008.pt", "latest.pt", "step_0000009.pt"]
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["step"] == 9
