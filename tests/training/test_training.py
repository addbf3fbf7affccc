import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import TINY_CUT, TINY_CYCLEGAN, TINY_PIX2PIX, TINY_UNSB, assert_resume_is_bitwise, compare_states, random_image

from img2img.cli import main
from img2img.config import ModelConfig
from img2img.methods import build_method, new_run_config
from img2img.persist.checkpoint import load_checkpoint
from img2img.training.schedule import lr_factor
from img2img.translate.translator import Translator


@pytest.mark.slow
def test_five_step_cli_run_writes_metrics_samples_and_checkpoints(paired_dir, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "5", "--sample-every", "2",
               *TINY_PIX2PIX])
    assert rc == 0
    rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["kind"] == "train"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert {"epoch", "G_GAN", "G_L1", "D_real", "D_fake", "lr", "images_per_s"} <= set(rows[0])
    assert float(rows[0]["lr"]) == pytest.approx(2e-4)
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png", "step_0000005.png"]
    # 4 training pairs at batch 1: epoch 1 ends at step 4, fewer than --save-every's 1000 steps
    # after the start, so it writes no full checkpoint (and no snapshot: those come every 10 of
    # the default 200 epochs); the run ends at step 5.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.pt", "step_0000005.pt"]
    assert not (out / "snapshots").exists()
    assert (out / "config.json").is_file()
    assert any((out / "tensorboard").iterdir())
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["config"]["model"]["netG"] == "unet_32" and state["progress"]["step"] == 5


def test_zero_intervals_mean_never_rather_than_a_crash(paired_dir, tmp_path):
    out = tmp_path / "run"
    flags = [f for f in TINY_PIX2PIX if f not in ("--log-every", "1")]
    rc = main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "5", "--log-every", "0",
               "--sample-every", "0", "--save-every", "0", *flags])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r["kind"] == "train"] == [4, 5]
    assert [int(r["step"]) for r in rows if r["kind"] == "eval"] == [5]  # the run's end: its val figures
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000005.png"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "epoch_0001_step_0000004.pt", "latest.pt", "step_0000005.pt"]


def test_sample_grid_shows_input_output_target_per_validation_image(paired_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "1", *TINY_PIX2PIX])
    grid = Image.open(next((out / "samples").iterdir()))
    # 3 columns (input | output | target) by 2 validation images, 32 px with 2 px padding.
    assert grid.size == (3 * 34 + 2, 2 * 34 + 2)


@pytest.mark.slow
def test_checkpoint_round_trips_to_an_identical_model(paired_dir, tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "2", *TINY_PIX2PIX])
    path = out / "checkpoints" / "latest.pt"
    state = load_checkpoint(path)
    translator = Translator.from_checkpoint(path, device="cpu")
    restored = translator.generator("AtoB").state_dict()
    saved = state["method"]["networks"]["G"]
    assert restored.keys() == saved.keys()
    assert all(torch.equal(restored[k], saved[k]) for k in saved)
    # The config alone rebuilt it: same architecture as trained.
    assert translator.cfg.model.netG == "unet_32" and translator.cfg.model.ngf == 8


@pytest.mark.slow
def test_pix2pix_overfits_one_pair():
    """L1 must halve within 200 steps; 120 keep the test quick and still pass with margin."""
    torch.manual_seed(0)
    cfg = new_run_config("pix2pix", model=ModelConfig(netG="unet_32", ngf=16, ndf=16))
    method = build_method(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g) * 2 - 1, size=32, mode="bilinear")
    batch = {"A": a, "B": -a.flip(-1)}
    l1 = [method.training_step(batch)["G_L1"].item() for _ in range(120)]
    first, last = sum(l1[:10]) / 10, sum(l1[-10:]) / 10
    assert last <= 0.5 * first, (first, last)


def test_lr_is_constant_then_decays_linearly_to_zero():
    # 3 constant epochs, 4 decaying ones; the factor reaches 0 as the last epoch ends.
    factors = [lr_factor(e, epochs=3, epochs_decay=4) for e in range(8)]
    assert factors[:3] == [1.0, 1.0, 1.0]
    assert factors[3:] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])






# Every pix2pix ingredient beyond the paper's: EMA of G, 2-scale D with feature matching,
# spectral norm, a separate D learning rate. Their state must resume bitwise too.
PIX2PIX_IMPROVED = [*TINY_PIX2PIX, "--ema", "0.99", "--netD", "multiscale", "--num-d", "2", "--n-layers-d", "2",
                    "--lambda-feat", "10", "--spectral-norm", "--lr-d", "0.0004"]


@pytest.mark.parametrize("flags,data_fixture", [(TINY_PIX2PIX, "paired_dir"), (PIX2PIX_IMPROVED, "paired_dir"),
                                                (TINY_CYCLEGAN, "unpaired_dir"), (TINY_CUT, "unpaired_dir"),
                                                (TINY_UNSB, "unpaired_dir")],
                         ids=["pix2pix", "pix2pix-improved-ingredients", "cyclegan", "cut", "unsb"])
@pytest.mark.slow
def test_resume_is_bitwise_identical_to_a_straight_run(flags, data_fixture, request, tmp_path):
    data = request.getfixturevalue(data_fixture)
    # Two workers, mid-epoch stop (4 samples/epoch): worker seeding and data position must be restored.
    common = ["--data", str(data), "--batch-size", "1", *flags, "--num-workers", "2"]
    resumed = assert_resume_is_bitwise(common, tmp_path, stop=3, end=7, tensors=20)
    assert resumed["progress"]["step"] == 7


@pytest.mark.slow
def test_resume_from_a_checkpoint_written_in_the_background_is_bitwise(paired_dir, tmp_path):
    # --save-every 3 writes steps 3 and 6 on the background writer while training goes on, and
    # epoch ends at 4 and 8 (--save-every 0 would write those too) copy the state the same way.
    common = ["--data", str(paired_dir), *TINY_PIX2PIX, "--num-workers", "2", "--save-every", "3", "--keep", "0"]
    main(["train", *common, "--out", str(tmp_path / "straight"), "--max-steps", "10"])
    main(["train", "--resume", str(tmp_path / "straight/checkpoints/step_0000006.pt"),
          "--out", str(tmp_path / "resumed"), "--max-steps", "10"])
    straight = load_checkpoint(tmp_path / "straight/checkpoints/latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed/checkpoints/latest.pt")
    for state in (straight, resumed):
        del state["config"]["train"]["out"]
    assert resumed["progress"]["step"] == 10
    assert compare_states(straight, resumed) > 20


def test_resume_auto_without_checkpoint_starts_fresh(paired_dir, tmp_path, capsys):
    rc = main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "r"), "--resume", "auto",
               "--max-steps", "1", *TINY_PIX2PIX])
    assert rc == 0
    assert "starting a new run" in capsys.readouterr().out


def test_corrupt_image_is_skipped_with_a_warning_and_counted(paired_dir, tmp_path, capsys):
    (paired_dir / "train" / "9.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "run"
    rc = main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "6", *TINY_PIX2PIX])
    assert rc == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "skipped " in text and "9.png: cannot read image" in text
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["progress"]["bad_images"] >= 1


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "img2img", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def assert_one_line_error(capsys):
    """Runs the CLI in this process (a subprocess would spend seconds importing torch) and checks
    that it fails with exit code 2 and one line naming the problem."""
    def check(args, *fragments):
        code = main(list(args))
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        for fragment in fragments:
            assert fragment in lines[0], lines[0]
    return check


def test_missing_data_folder_gets_a_one_line_error(tmp_path, assert_one_line_error):
    missing = tmp_path / "nowhere"
    assert_one_line_error(("train", "--data", str(missing), "--out", str(tmp_path / "o"), *TINY_PIX2PIX),
                          str(missing), "does not exist")


def test_empty_data_folder_gets_a_one_line_error(tmp_path, assert_one_line_error):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    assert_one_line_error(("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                                  *TINY_PIX2PIX), "empty", "holds no images")


def test_an_odd_width_image_and_a_size_mismatched_pair_are_named_and_skipped(paired_dir, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (65, 32)).save(paired_dir / "train" / "odd.png")
    rc = main(["train", "--data", str(paired_dir), "--out", str(tmp_path / "run"), "--max-steps", "4", *TINY_PIX2PIX])
    assert rc == 0
    text = "".join(capsys.readouterr())
    assert "odd.png: a mismatched pair: width 65 is odd" in text
    folders = tmp_path / "folders" / "train"
    for side, size in (("A", (32, 32)), ("B", (32, 32))):
        (folders / side).mkdir(parents=True)
        for i in range(3):
            random_image(np.random.default_rng(i), *size).save(folders / side / f"{i}.png")
    random_image(np.random.default_rng(9), 40, 30).save(folders / "B" / "2.png")
    rc = main(["train", "--data", str(folders.parent), "--out", str(tmp_path / "run2"), "--max-steps", "3",
               *TINY_PIX2PIX])
    assert rc == 0
    assert "2.png: a mismatched pair: size 40x30 differs from its A image 2.png (32x32)" in "".join(capsys.readouterr())


def test_odd_width_gets_a_one_line_error(tmp_path, assert_one_line_error):
    from PIL import Image

    (tmp_path / "d" / "train").mkdir(parents=True)
    Image.new("RGB", (65, 32)).save(tmp_path / "d" / "train" / "odd.png")
    assert_one_line_error(("train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                                  *TINY_PIX2PIX), "odd.png", "width 65 is odd")


def test_mismatched_folder_names_get_a_one_line_error(tmp_path, assert_one_line_error):
    from PIL import Image

    for sub, name in (("A", "one"), ("B", "two")):
        (tmp_path / "d" / "train" / sub).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(tmp_path / "d" / "train" / sub / f"{name}.png")
    assert_one_line_error(("train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                                  *TINY_PIX2PIX), "names do not match", "one", "two")


@pytest.mark.slow
def test_module_and_console_script_share_the_cli():
    result = run_cli("--help")
    assert result.returncode == 0 and "train" in result.stdout and "translate" in result.stdout


def test_a_trainer_is_freed_when_dropped_so_its_loader_workers_exit(paired_dir, tmp_path):
    """Data workers ignore SIGTERM (a stop is the trainer's to handle), so the exit handlers
    cannot stop them: a Trainer kept alive by a reference cycle would hang the process's exit."""
    import gc
    import weakref

    from img2img.config import DataConfig, TrainConfig
    from img2img.training import Trainer

    cfg = new_run_config("pix2pix", model=ModelConfig(netG="unet_32", ngf=8, ndf=8),
                               data=DataConfig(root=str(paired_dir), size=32, load_size=36, num_workers=1),
                               train=TrainConfig(out=str(tmp_path / "run"), max_steps=1, device="cpu", fid_every=0))
    trainer = Trainer.from_config(cfg)
    trainer.fit()
    freed = weakref.ref(trainer)
    gc.disable()
    try:
        del trainer
        assert freed() is None
    finally:
        gc.enable()


EXITS_WITH_A_LIVE_TRAINER = """
import sys
from img2img.config import DataConfig, ModelConfig, TrainConfig
from img2img.methods import new_run_config
from img2img.training import Trainer
cfg = new_run_config("pix2pix", model=ModelConfig(netG="unet_32", ngf=8, ndf=8),
                     data=DataConfig(root=sys.argv[1], size=32, load_size=36, num_workers=1),
                     train=TrainConfig(out=sys.argv[2], max_steps=1, device="cpu", fid_every=0))
trainer = Trainer.from_config(cfg)  # still referenced when the interpreter exits
trainer.fit()
"""


@pytest.mark.slow
def test_a_script_that_keeps_its_trainer_exits_when_done(paired_dir, tmp_path):
    """The loader's workers end with `fit`: the exit handlers, which cannot stop them (they
    ignore SIGTERM), have nothing to wait for."""
    done = subprocess.run([sys.executable, "-c", EXITS_WITH_A_LIVE_TRAINER, str(paired_dir), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


def test_every_run_ends_with_its_validation_figures_and_says_why_fid_is_missing(paired_dir, tmp_path):
    from helpers import TINY_PIX2PIX

    from img2img.training.run_folder import RunFolder

    out = tmp_path / "run"
    assert main(["train", "--data", str(paired_dir), "--out", str(out), *TINY_PIX2PIX, "--max-steps", "4",
                 "--val-every", "2", "--fid-every", "0"]) == 0
    rows = [r for r in RunFolder(out).metrics() if r.kind == "eval"]
    assert [r.step for r in rows] == [2, 4]
    assert all(0 <= r.values["val_ssim"] <= 1 and r.values["val_l1"] > 0 for r in rows)
    assert rows[-1].values["fid_note"].startswith("not measured: 2 validation images, fewer than the 50")
