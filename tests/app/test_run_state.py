"""The Train tab's run state comes from the run folder's contract (status.json), never from the
log's words: a real `img2img train` process, stopped by SIGKILL or failing on a bad file."""
import dataclasses
import os
import signal
import time

import pytest
from helpers import make_paired
from PIL import Image

from img2img.config import DataConfig, ModelConfig, TrainConfig
from img2img.methods import new_run_config
from img2img.service.run_limits import TrainingLimits
from img2img.service.runs import RunManager
from img2img.training.run_folder import RunFolder


def tiny_run(data, max_steps: int):
    return new_run_config("pix2pix", model=ModelConfig(netG="unet_32", ngf=8, ndf=8),
                          data=DataConfig(root=str(data), size=32, load_size=36, num_workers=0),
                          train=TrainConfig(max_steps=max_steps, log_every=1, fid_every=0, device="cpu"))


def wait_for(condition, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def a_long_run_training(tmp_path, name: str, **manager) -> tuple[RunManager, str, RunFolder]:
    """(the manager, the run's name, its folder), once its process has trained a step."""
    runs = RunManager(tmp_path / "runs", **manager)
    name = runs.submit(tiny_run(make_paired(tmp_path / "data"), max_steps=100_000), name)
    folder = RunFolder(runs.folder(name))
    wait_for(lambda: (s := folder.status()) is not None and s.state == "running" and s.step > 0)
    return runs, name, folder


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_interrupted_and_says_so(tmp_path):
    runs, name, folder = a_long_run_training(tmp_path, "killed")
    assert runs.view(name).state == "running"
    os.kill(folder.status().pid, signal.SIGKILL)
    wait_for(lambda: runs.view(name).error, 30)  # the reaper records how the process ended
    view = runs.view(name)
    assert (view.state, view.error) == ("interrupted", "killed by SIGKILL")
    assert folder.status().state == "running"  # what the process last said; the page knows better
    # A server that starts afresh (no exit code known) still sees it from status.json alone.
    again = RunManager(tmp_path / "runs")
    record = again._read(name)
    record.pop("exit_code")
    again._write(again.folder(name), record)
    assert again.view(name).state == "interrupted" and again.view(name).can_resume


@pytest.mark.slow
def test_a_run_that_fails_on_a_bad_file_shows_the_one_line_error(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    Image.new("RGB", (65, 32)).save(tmp_path / "data" / "train" / "odd.png")
    runs = RunManager(tmp_path / "runs")
    name = runs.submit(tiny_run(tmp_path / "data", max_steps=3), "broken")
    wait_for(lambda: runs.view(name).state not in ("queued", "running"))
    view = runs.view(name)
    assert view.state == "failed" and "odd.png" in view.error and "width 65 is odd" in view.error
    assert "\n" not in view.error and RunFolder(runs.folder(name)).status().state == "failed"
    assert view.can_resume and f"error: {view.error}" in view.line()


@pytest.mark.slow
def test_a_finished_run_reports_its_totals_and_rows_from_the_contract(tmp_path):
    runs = RunManager(tmp_path / "runs")
    name = runs.submit(tiny_run(make_paired(tmp_path / "data"), max_steps=3), "done")
    wait_for(lambda: runs.view(name).state not in ("queued", "running"))
    watch = runs.watch(name)
    assert (watch.view.state, watch.view.step, watch.view.total_steps) == ("finished", 3, 3)
    assert sorted({r["step"] for r in watch.losses}) == [1, 2, 3]
    # It ended with its validation figures (not the seconds they took).
    assert sorted(r["metric"] for r in watch.evaluations) == ["val_l1", "val_psnr", "val_ssim"]
    assert RunFolder(runs.folder(name)).config().train.max_steps == 3


@pytest.mark.slow
def test_a_stop_asked_through_the_run_folder_stops_the_run_with_a_checkpoint(tmp_path):
    """No signal at all: a process that missed the SIGINT (while it started) still stops."""
    runs, name, folder = a_long_run_training(tmp_path, "asked")
    folder.request_stop()
    wait_for(lambda: folder.status().state != "running", 60)
    assert folder.status().state == "stopped" and folder.checkpoint() is not None
    wait_for(lambda: runs.view(name).state == "stopped", 30)  # once its process has exited


@pytest.mark.slow
def test_a_running_run_that_reaches_the_disk_budget_stops_with_a_checkpoint(tmp_path):
    runs, name, folder = a_long_run_training(tmp_path, "filling", run_limits=TrainingLimits(max_runs_disk=1))
    (tmp_path / "runs" / "old").mkdir()
    (tmp_path / "runs" / "old" / "big.pt").write_bytes(b"\0" * 1_000_000)  # the budget is reached
    assert runs.view(name).state == "running"
    wait_for(lambda: (runs.tick(), runs.view(name).state)[1] == "stopped", 60)
    view = runs.view(name)
    assert "at this server's disk budget of 1 MB (--max-runs-disk)" in view.error and f"why: {view.error}" in view.line()
    assert folder.status().state == "stopped" and folder.checkpoint() is not None and view.can_resume


@pytest.mark.slow
def test_a_run_past_its_process_memory_cap_fails_saying_out_of_memory(tmp_path):
    runs = RunManager(tmp_path / "runs", run_limits=TrainingLimits(max_run_process_mb=1500))
    cfg = tiny_run(make_paired(tmp_path / "data"), max_steps=3)
    big = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, ngf=512))  # about 2.6 GB of weights
    name = runs.submit(big, "greedy")
    wait_for(lambda: runs.view(name).state not in ("queued", "running"))
    view = runs.view(name)
    assert view.state == "failed", view
    assert view.error == "out of memory: this run's process may take 1,500 MB (the app's --max-run-process-mb)"


def test_the_eta_follows_the_recent_speed_smoothed_not_the_last_window(tmp_path):
    runs = RunManager(tmp_path / "runs", max_runs=0)
    name = runs.submit(tiny_run(tmp_path / "data", max_steps=1000), "smooth")
    folder = RunFolder(runs.folder(name))
    folder.update_status(state="running", step=100, total_steps=1000, batch_size=1, images_per_s=10.0)
    folder.update_status(images_per_s=20.0)  # one fast window
    assert folder.status().speed == 12.0
    view = dataclasses.replace(runs.view(name), state="running")  # as the page shows a live one
    assert view.eta_s == 900 / 12.0 and "about 75 s left (83 s in all on this machine)" in view.line()
