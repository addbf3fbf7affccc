"""Starting and resuming runs: what may change on resume, which sizes fit, where training data
comes from, and what the run folder holds."""
import csv
import os

import pytest
import torch
from helpers import TINY_PIX2PIX

from img2img.cli import main
from img2img.config import DataConfig, ModelConfig, TrainConfig
from img2img.methods import equivalent_command, new_run_config
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from img2img.training import Trainer
from img2img.training.checkpoint_files import numbered_checkpoints
from img2img.training.run_folder import MetricsLog, RunFolder, read_config


def latest_config(out):
    return checkpoint_config(load_checkpoint(out / "checkpoints" / "latest.pt"))


def test_resume_with_a_changed_loss_weight_trains_with_the_new_weight(paired_dir, tmp_path):
    out = tmp_path / "run"
    args = ["--data", str(paired_dir), "--out", str(out), *TINY_PIX2PIX]
    assert main(["train", *args, "--max-steps", "2"]) == 0
    assert main(["train", "--resume", "auto", *args, "--max-steps", "3", "--lambda-l1", "50"]) == 0
    cfg = latest_config(out)
    assert cfg.method_config.lambda_l1 == 50.0
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["step"] == 3


def test_resume_refuses_an_architecture_change_in_one_line(paired_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", str(paired_dir), "--out", str(out), *TINY_PIX2PIX]
    assert main(["train", *args, "--max-steps", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "auto", *args, "--max-steps", "2", "--ngf", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --ngf 16 cannot change when resuming: the checkpoint's network was built with 8. "
                   "Leave it out, or start a new run in another --out")


def test_a_setting_of_another_method_is_refused(paired_dir, tmp_path, capsys):
    assert main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--lambda-cycle", "5",
                 *TINY_PIX2PIX]) == 2
    assert capsys.readouterr().err.strip() == "error: --lambda-cycle does not apply to pix2pix"


def test_the_default_unet_takes_its_depth_from_the_size(paired_dir, tmp_path):
    out = tmp_path / "run"
    flags = [f for f in TINY_PIX2PIX if f not in ("--netG", "unet_32")]
    assert main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "1", *flags]) == 0
    assert latest_config(out).model.netG == "unet_32"


@pytest.mark.parametrize("flags,message", [
    (["--netG", "unet_256", "--size", "64", "--load-size", "70"],
     "error: --size 64 does not fit --netG unet_256, which needs multiples of 256: use --size 256 or --netG unet "
     "(picks the depth)"),
    (["--netG", "unet", "--size", "48", "--load-size", "52"],
     "error: --size 48: a U-Net needs a multiple of 32 (e.g. 32); or use --netG resnet_9blocks, which takes "
     "multiples of 4"),
    (["--netG", "resnet_6blocks", "--size", "16", "--load-size", "20"],
     "error: --size 16 is too small for a 3-layer PatchGAN: use --n-layers-d 2, or a larger --size"),
    (["--netG", "unet_32", "--size", "32", "--load-size", "36", "--recipe", "improved"],
     "error: --size 32 is too small for a 2-scale discriminator: its coarsest scale sees 16 px, too few for a "
     "3-layer PatchGAN; use --num-d 1, or a larger --size"),
])
def test_sizes_that_do_not_fit_get_one_line_naming_what_fits(paired_dir, tmp_path, capsys, flags, message):
    base = ["--ngf", "8", "--ndf", "8", "--num-workers", "0", "--device", "cpu"]
    assert main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), *base, *flags]) == 2
    assert capsys.readouterr().err.strip() == message


class InMemoryPairs(torch.utils.data.Dataset):
    """Items keyed by (epoch, index), as the trainer's sampler yields them."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.a = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, key):
        index = key[1] if isinstance(key, tuple) else key
        return {"A": self.a[index], "B": -self.a[index]}


def test_a_trainer_trains_on_datasets_passed_in(tmp_path):
    cfg = new_run_config("pix2pix", model=ModelConfig(netG="unet_32", ngf=8, ndf=8),
                               data=DataConfig(size=32, num_workers=0),
                               train=TrainConfig(out=str(tmp_path / "run"), max_steps=3, log_every=1, device="cpu"))
    trainer = Trainer(cfg, InMemoryPairs(4))
    final = trainer.fit()
    assert load_checkpoint(final)["progress"]["step"] == 3
    assert (tmp_path / "run" / "samples" / "step_0000003.png").is_file()


def test_metrics_csv_is_appended_and_rewritten_only_for_a_new_column(tmp_path, monkeypatch):
    import img2img.training.run_folder as run_folder

    rewrites = []
    real = run_folder.atomic_write_text
    monkeypatch.setattr(run_folder, "atomic_write_text", lambda path, text: (rewrites.append(path), real(path, text)))
    metrics = MetricsLog(tmp_path)
    for step in range(1, 101):
        metrics.write("train", step, 1, {"loss": 1.0 / step})
    metrics.write("eval", 100, 1, {"fid_AtoB": 42.0})
    metrics.close()
    assert len(rewrites) == 2  # the first row, and the first FID row
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert len(rows) == 101 and rows[-1]["fid_AtoB"] == "42.0" and rows[0]["fid_AtoB"] == ""
    # A resume from step 50 drops the rows after it, which are about to be trained again.
    MetricsLog(tmp_path, after_step=50).close()
    assert [int(r["step"]) for r in csv.DictReader(open(tmp_path / "metrics.csv"))] == list(range(1, 51))


def test_metrics_rows_are_read_back_tagged_train_or_eval(tmp_path):
    metrics = MetricsLog(tmp_path)
    metrics.write("train", 10, 1, {"G_L1": 0.5, "images_per_s": 3.0})
    metrics.write("eval", 10, 1, {"fid_AtoB": 42.0, "inception_weights": "tf"})
    metrics.write("train", 20, 2, {"G_L1": 0.25, "images_per_s": 3.5})
    metrics.close()
    rows = RunFolder(tmp_path).metrics()
    assert [(r.kind, r.step, r.epoch) for r in rows] == [("train", 10, 1), ("eval", 10, 1), ("train", 20, 2)]
    assert rows[1].values == {"fid_AtoB": 42.0, "inception_weights": "tf"}
    assert rows[2].values == {"G_L1": 0.25, "images_per_s": 3.5}


def test_checkpoints_are_ordered_by_step_not_file_time(tmp_path):
    for name, step in (("step_0000010.pt", 10), ("epoch_0001_step_0000020.pt", 20), ("step_0000030.pt", 30),
                       ("epoch_0002.pt", 40)):
        save_checkpoint(tmp_path / name, {"config": new_run_config("pix2pix").to_dict(), "progress": {"step": step}})
    # Copying a run folder (or a clock change) can give any order of modification times.
    for i, name in enumerate(["step_0000030.pt", "epoch_0002.pt", "step_0000010.pt", "epoch_0001_step_0000020.pt"]):
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert [p.name for p in numbered_checkpoints(tmp_path)] == [
        "epoch_0002.pt", "step_0000030.pt", "epoch_0001_step_0000020.pt", "step_0000010.pt"]


def test_the_equivalent_command_and_the_saved_config_give_the_same_run(tmp_path):
    """The app starts a run from its saved config, and shows the command that repeats it in a
    terminal: both routes give the run the same config."""
    import shlex

    from img2img.cli import build_parser, given_settings
    from img2img.training import config_for_run

    cfg = new_run_config("cyclegan")
    cfg.data.root, cfg.data.size, cfg.data.range_a = str(tmp_path / "my data"), (64, 32), (-1024.0, 3071.0)
    cfg.data.domain_a, cfg.model.ngf, cfg.data.flip = "horse photo", 16, False
    cfg.method_config.lambda_cycle, cfg.train.lr, cfg.train.speed.amp = 5.0, 1e-4, False
    cfg.train.out = str(tmp_path / "run")
    command = f"{equivalent_command(cfg)} --out {shlex.quote(cfg.train.out)}"
    assert command.startswith("img2img train --model cyclegan --data ")
    parser = build_parser()

    def run_of(words):
        args = parser.parse_args(words)
        base = read_config(args.config) if args.config else None
        return config_for_run(given_settings(args, ("model", "method_config", "data", "train", "speed")),
                              method=args.model, data=args.data, out=args.out, base=base).cfg

    RunFolder(tmp_path / "saved").write_config(cfg)
    from_command = run_of(shlex.split(command)[1:])
    from_config = run_of(["train", "--config", str(tmp_path / "saved" / "config.json"), "--out", cfg.train.out])
    assert from_command == from_config == cfg
