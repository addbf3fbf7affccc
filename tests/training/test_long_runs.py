"""Long runs: a bounded number of checkpoint files, generator snapshots, and epoch ends that do
not stall training."""
import subprocess
import sys
import textwrap
from collections import namedtuple

import numpy as np
import pytest
import torch
from helpers import TINY_PIX2PIX, random_image
from torch.utils.data import DataLoader

from img2img.cli import main
from img2img.persist.checkpoint import load_checkpoint
from img2img.training import Trainer, config_for_run
from img2img.training import footprint as footprint_module
from img2img.translate.catalog import discover_checkpoints
from img2img.translate.translator import Translator


def tiny_trainer(data, out, *flags: str) -> Trainer:
    """A Trainer built as `img2img train` builds it, from CLI-style settings."""
    from img2img.cli import build_parser, given_settings

    args = build_parser().parse_args(["train", "--data", str(data), "--out", str(out), *TINY_PIX2PIX, *flags])
    start = config_for_run(given_settings(args, ("model", "method_config", "data", "train", "speed")),
                           data=str(data), out=str(out))
    return Trainer.from_config(start.cfg)


@pytest.mark.slow
def test_a_many_epoch_run_leaves_the_announced_files_at_the_predicted_sizes(paired_dir, tmp_path):
    # 4 pairs at batch 1: 12 epochs of 4 steps; a full checkpoint at each epoch end.
    trainer = tiny_trainer(paired_dir, tmp_path / "run", "--epochs", "6", "--epochs-decay", "6", "--fid-every", "0",
                           "--save-every", "0", "--snapshot-every", "5")
    predicted = trainer.footprint
    trainer.fit()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    snapshots = sorted((tmp_path / "run" / "snapshots").iterdir())
    assert checkpoints == ["epoch_0011_step_0000044.pt", "epoch_0012_step_0000048.pt", "latest.pt"]
    assert [p.name for p in snapshots] == ["epoch_0005_step_0000020.pt", "epoch_0010_step_0000040.pt",
                                           "epoch_0012_step_0000048.pt"]
    assert (predicted.full_files, predicted.snapshots) == (4, 3)
    full = (tmp_path / "run" / "checkpoints" / "latest.pt").stat().st_size
    # The prediction counts tensor bytes; the file adds names, the config and RNG state.
    assert predicted.full_bytes <= full <= predicted.full_bytes * 1.1 + 64e3
    for snapshot in snapshots:
        assert predicted.snapshot_bytes <= snapshot.stat().st_size <= predicted.snapshot_bytes * 1.1 + 32e3


@pytest.mark.slow
def test_an_epoch_end_writes_a_full_checkpoint_only_every_save_every_steps(paired_dir, tmp_path):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "16", "--keep", "0",
          "--save-every", "6", "--fid-every", "0", "--snapshot-every", "1", *TINY_PIX2PIX])
    # Epoch ends at 4, 8, 12 and 16 (the run's end); --save-every 6 writes at 6 and 12, and the
    # epoch end at 8 (2 steps after 6) gets its snapshot only.
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "latest.pt", "step_0000006.pt", "step_0000012.pt", "step_0000016.pt"]
    assert len(list((tmp_path / "run" / "snapshots").iterdir())) == 4


def test_the_announced_footprint_counts_every_checkpoint_with_keep_0(paired_dir, tmp_path):
    trainer = tiny_trainer(paired_dir, tmp_path / "run", "--epochs", "2", "--epochs-decay", "1", "--fid-every", "0",
                           "--save-every", "5", "--keep", "0", "--snapshot-every", "0")
    # 3 epoch ends and steps 5 and 10 of 12, plus best.pt and one being written.
    assert (trainer.footprint.full_files, trainer.footprint.snapshots) == (3 + 2 + 2, 0)


@pytest.mark.slow
@pytest.mark.parametrize("half", [True, False])
def test_a_snapshot_translates_as_the_full_checkpoint_of_its_step(paired_dir, tmp_path, half):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "8", "--keep", "0",
          "--save-every", "0", "--fid-every", "0", "--snapshot-every", "1", *([] if half else ["--no-snapshot-half"]), *TINY_PIX2PIX])
    full = Translator.from_checkpoint(tmp_path / "run/checkpoints/epoch_0002_step_0000008.pt", device="cpu", engine="torch")
    snapshot = Translator.from_checkpoint(tmp_path / "run/snapshots/epoch_0002_step_0000008.pt", device="cpu",
                                          engine="torch")
    image = random_image(np.random.default_rng(0), 32, 32)
    a = np.asarray(full.translate(image), dtype=float)
    b = np.asarray(snapshot.translate(image), dtype=float)
    if half:  # fp16 weights: 11-bit mantissas, a few 8-bit levels at most
        assert np.abs(a - b).max() <= 3 and np.abs(a - b).mean() < 0.5
    else:
        assert np.array_equal(a, b)


def test_translate_export_and_the_app_take_a_snapshot(paired_dir, tmp_path):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "4", "--fid-every", "0",
          "--snapshot-every", "1", *TINY_PIX2PIX])
    snapshot = tmp_path / "run/snapshots/epoch_0001_step_0000004.pt"
    assert main(["translate", "--checkpoint", str(snapshot), str(paired_dir / "val"), str(tmp_path / "out"),
                 "--device", "cpu", "--num-workers", "0", "--engine", "torch"]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert main(["export", str(snapshot), str(tmp_path / "exported.pt")]) == 0
    assert load_checkpoint(tmp_path / "exported.pt")["progress"]["step"] == 4
    # The app lists every checkpoint under its folder: a run folder's snapshots too.
    models, skipped = discover_checkpoints(tmp_path / "run")
    assert snapshot in [m.path for m in models] and not skipped


def test_resume_refuses_a_snapshot_in_one_line(paired_dir, tmp_path, capsys):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "4", "--fid-every", "0",
          "--snapshot-every", "1", *TINY_PIX2PIX])
    capsys.readouterr()
    snapshot = tmp_path / "run/snapshots/epoch_0001_step_0000004.pt"
    assert main(["train", "--resume", str(snapshot), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no optimizer state" in err and str(snapshot) in err


Usage = namedtuple("Usage", "total used free")


def test_a_disk_that_cannot_hold_one_checkpoint_is_refused_in_one_line(paired_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(footprint_module.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - 1000, 1000))
    assert main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "2",
                 *TINY_PIX2PIX]) == 2
    err = capsys.readouterr().err
    assert "less than one checkpoint needs" in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_a_disk_short_of_the_runs_footprint_is_warned_once(paired_dir, tmp_path, monkeypatch, capsys):
    trainer = tiny_trainer(paired_dir, tmp_path / "run", "--max-steps", "8", "--fid-every", "0")
    room = trainer.footprint.full_bytes + 1  # one checkpoint fits, the run's do not
    monkeypatch.setattr(footprint_module.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - room, room))
    trainer.fit()
    err = capsys.readouterr().err
    assert err.count("this run's checkpoints may need up to") == 1


@pytest.mark.slow
def test_the_loader_keeps_its_workers_loading_across_epoch_ends(paired_dir, tmp_path, monkeypatch):
    iterators = []
    original = DataLoader.__iter__
    monkeypatch.setattr(DataLoader, "__iter__", lambda self: iterators.append(1) or original(self))
    trainer = tiny_trainer(paired_dir, tmp_path / "run", "--max-steps", "12", "--fid-every", "0")
    trainer.fit()
    assert trainer.progress.epoch == 3 and len(iterators) == 1


KILLED_DURING_A_WRITE = textwrap.dedent("""
    import sys, time, torch
    from pathlib import Path
    from img2img.persist.checkpoint import save_checkpoint
    from img2img.training.background_writer import BackgroundWriter

    path = Path(sys.argv[1])
    save_checkpoint(path, {"config": {}, "w": torch.zeros(4)})
    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)

    torch.save = slow_save
    writer = BackgroundWriter()
    writer.submit(lambda: save_checkpoint(path, {"config": {}, "w": torch.ones(4)}), "checkpoint")
    writer.wait()
""")


@pytest.mark.slow
def test_a_process_killed_during_a_background_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "latest.pt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DURING_A_WRITE, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.zeros(4))


@pytest.mark.slow
def test_fid_scores_a_snapshot_on_the_validation_split(paired_dir, tmp_path, capsys):
    main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "4", "--fid-every", "0",
          "--snapshot-every", "1", *TINY_PIX2PIX])
    capsys.readouterr()
    assert main(["fid", "--checkpoint", str(tmp_path / "run/snapshots/epoch_0001_step_0000004.pt")]) == 0
    out = capsys.readouterr().out
    assert "FID AtoB" in out and "KID AtoB" in out
