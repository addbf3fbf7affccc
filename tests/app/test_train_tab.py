"""The Train tab through its API and in a browser: runs in their own processes that a reload
re-attaches to and a restarted server finds, Stop and Resume bit for bit, the tab absent and the
endpoints refused without --allow-training, and the whole loop on the page."""
import json
import os
import shutil
import signal
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from helpers import BUNDLED, chromium_path, compare_states, launch, make_paired, open_train_tab, random_image, screenshot_dir

from img2img.persist.checkpoint import load_checkpoint
from img2img.service.training import TrainingService

# A tiny pix2pix that trains a step in a few tens of milliseconds.
TINY = {"model.netG": "unet_32", "model.ngf": "8", "model.ndf": "8", "data.num_workers": "0",
        "train.log_every": "1", "train.device": "cpu"}


@pytest.fixture
def data_root(tmp_path):
    make_paired(tmp_path / "data" / "pairs", n_train=6, n_val=2)
    return tmp_path / "data"


def start(client, steps, **settings):
    return client.predict("pairs", "pix2pix", "custom", 32, steps, "steps", {**TINY, **settings},
                          api_name="/train_start")["run"]


def wait_for(client, run, until, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = client.predict(run, api_name="/train_poll")
        if until(poll):
            return poll
        time.sleep(0.3)
    raise AssertionError(f"{run}: still {poll['state']} at step {poll['step']}:\n{poll['log']}")


def final_state(runs: Path, run: str) -> dict:
    state = load_checkpoint(runs / run / "checkpoints" / "latest.pt")
    del state["config"]["train"]["out"]
    return state


@pytest.mark.slow
def test_stop_then_resume_ends_bitwise_equal_to_an_uninterrupted_run(data_root, tmp_path):
    service = TrainingService(data_root, tmp_path / "runs", max_runs=2)
    app, url = launch(tmp_path / "no_models", tmp_path, training=service)
    try:
        client = Client(url, verbose=False)
        straight, stopped = start(client, 60), start(client, 60)
        # Watched on the server's side, every 50 ms, so that Stop lands mid-run on a busy machine.
        deadline = time.monotonic() + 120
        while service.runs.view(stopped).step < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.predict(stopped, api_name="/train_stop") == f"{stopped}: stopping"
        poll = wait_for(client, stopped, lambda p: p["state"] == "stopped")
        assert poll["checkpoint"] == "latest.pt" and 3 <= poll["step"] < 60
        client.predict(stopped, api_name="/train_resume")
        wait_for(client, stopped, lambda p: p["state"] == "finished")
        wait_for(client, straight, lambda p: p["state"] == "finished")
    finally:
        app.close()
    assert compare_states(final_state(service.runs.runs_dir, straight),
                          final_state(service.runs.runs_dir, stopped)) > 10
    log = (service.runs.runs_dir / stopped / "train.log").read_text()
    assert "SIGINT: finishing this step and saving a checkpoint" in log and "--- resumed" in log


@pytest.mark.slow
def test_a_reload_reattaches_and_a_restarted_server_finds_an_interrupted_run(data_root, tmp_path):
    service = TrainingService(data_root, tmp_path / "runs")
    app, url = launch(tmp_path / "no_models", tmp_path, training=service)
    try:
        # A run long enough to outlast the test (6 pairs: 200 epochs would end it at step 1200).
        run = start(Client(url, verbose=False), 100_000, **{"train.epochs": "100000", "train.fid_every": "0"})
        queued = start(Client(url, verbose=False), 10)  # --max-runs 1: it waits
        reloaded = Client(url, verbose=False)  # a new page: nothing of the first one's session
        first = wait_for(reloaded, run, lambda p: p["step"] >= 2)
        assert {r["run"]: r["state"] for r in reloaded.predict(api_name="/train_runs")} == \
            {run: "running", queued: "queued"}
        assert reloaded.predict(queued, api_name="/train_poll")["queue_position"] == 1
        wait_for(reloaded, run, lambda p: p["step"] > first["step"])
    finally:
        app.close()
    # The server is gone and its run goes on; a new server finds it running.
    again = TrainingService(data_root, tmp_path / "runs")
    assert again.runs.view(run).state == "running"
    # The machine goes down with the run: the next server shows it interrupted, with Resume.
    pid = json.loads((again.runs.runs_dir / run / "run.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while again.runs.view(run).state == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    restarted = TrainingService(data_root, tmp_path / "runs")
    app, url = launch(tmp_path / "no_models", tmp_path, training=restarted)
    try:
        client = Client(url, verbose=False)
        states = {r["run"]: r["state"] for r in client.predict(api_name="/train_runs")}
        assert states[run] == "interrupted"
        client.predict(queued, api_name="/train_stop")  # a queued run leaves the queue
        client.predict(run, api_name="/train_resume")
        wait_for(client, run, lambda p: p["state"] == "running")
        with pytest.raises(Exception, match="stop it before deleting it"):
            client.predict(run, api_name="/train_delete")
        client.predict(run, api_name="/train_stop")
        wait_for(client, run, lambda p: p["state"] == "stopped")
        client.predict(run, api_name="/train_delete")
        assert run not in {r["run"] for r in client.predict(api_name="/train_runs")}
        assert not (restarted.runs.runs_dir / run).exists()
    finally:
        app.close()


def test_a_loss_chart_draws_its_first_step_as_points_and_later_ones_as_lines():
    import gradio as gr

    from img2img.app.train_runs import curves, plot

    chart = gr.LinePlot(x="step", y="value", color="loss")
    first = [{"step": 5, "loss": "G_GAN", "value": 1.0}, {"step": 5, "loss": "D_real", "value": 0.5}]
    assert plot(curves(first, "loss"), "loss", chart).value["mark"] == "point"
    later = first + [{"step": 10, "loss": "G_GAN", "value": 0.9}]
    assert plot(curves(later, "loss"), "loss", chart).value["mark"] == "line"


def test_without_allow_training_there_is_no_tab_and_the_endpoints_refuse(tmp_path):
    app, url = launch(tmp_path / "no_models", tmp_path)
    try:
        assert "Train" not in {c.get("props", {}).get("label") for c in app.config["components"]}
        client = Client(url, verbose=False)
        for endpoint, args in (("/train_runs", ()), ("/train_inspect", ("pairs",)), ("/train_stop", ("x",))):
            with pytest.raises(Exception, match="Training is off on this server: start it with --allow-training"):
                client.predict(*args, api_name=endpoint)
    finally:
        app.close()


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="no Chromium: install Debian's chromium package to run")
def test_browser_uploads_trains_watches_and_translates_with_the_new_model(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pairs = make_paired(tmp_path / "mine", n_train=6, n_val=2)
    upload = tmp_path / "my pictures.zip"
    with zipfile.ZipFile(upload, "w") as z:
        for path in sorted(pairs.rglob("*.png")):
            z.write(path, path.relative_to(pairs))
    random_image(np.random.default_rng(1), 32, 32).save(tmp_path / "photo.png")
    service = TrainingService(tmp_path / "data", tmp_path / "runs")
    service.runs.start_scheduler(0.5)
    app, url = launch(tmp_path / "no_models", tmp_path, training=service)
    shots = screenshot_dir(tmp_path)
    with playwright.sync_playwright() as p:
        browser, page = open_train_tab(p, tmp_path, url)
        try:
            first = tmp_path / "first try.zip"
            shutil.copy(upload, first)
            page.locator("#train-upload input[type=file]").set_input_files(str(first))
            command = page.locator("#train-command")
            command.get_by_text("first_try").wait_for(timeout=60_000)
            # A second upload: the report and the command box follow it.
            page.locator("#train-upload button[aria-label='Clear']").click()
            page.locator("#train-upload input[type=file]").set_input_files(str(upload))
            command.get_by_text("my_pictures").wait_for(timeout=60_000)
            report = page.locator("#train-report")
            report.get_by_text("A|B images side by side").wait_for(timeout=60_000)
            assert "train: 6 pairs" in report.inner_text() and "val: 2 pairs" in report.inner_text()
            page.locator("#train-samples img").first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "train_data_report.png"), full_page=True)
            page.get_by_label("Custom: the length below").check()
            page.locator("#train-size input").fill("32")
            page.locator("#train-length input").fill("20")
            page.locator("#train-all-settings").get_by_text("All settings").click()
            page.get_by_text("training", exact=True).click()
            page.get_by_label("--sample-every").fill("10")
            page.get_by_label("--log-every").fill("5")
            # A 8-filter network, loaded in this process: a fast run, and translated at fp32 at once.
            page.get_by_text("model (fixed once trained)", exact=True).click()
            page.get_by_label("--ngf").fill("8")
            page.get_by_label("--ndf").fill("8")
            page.get_by_text("data", exact=True).click()
            page.get_by_label("--num-workers").fill("0")
            command.get_by_text("--num-workers 0").wait_for(timeout=30_000)
            assert "img2img train --model pix2pix --data" in command.inner_text()
            page.locator("#train-start").click()
            status = page.locator("#train-status")
            status.get_by_text("running").wait_for(timeout=60_000)
            page.locator("#train-sample img").wait_for(timeout=90_000)
            page.locator("#train-losses").get_by_text("G_L1").wait_for(timeout=30_000)  # the curves, coloured
            page.screenshot(path=str(shots / "train_run_in_progress.png"), full_page=True)
            status.get_by_text("finished").wait_for(timeout=90_000)
            assert "step 20/20" in status.inner_text()
            # The log box shows its newest line, not the top of its tail.
            page.wait_for_function("(() => { const box = document.querySelector('#train-log textarea'); return "
                                   "box.scrollHeight > box.clientHeight && "
                                   "box.scrollTop + box.clientHeight >= box.scrollHeight - 2; })()", timeout=10_000)
            page.locator("#train-use").click()
            page.wait_for_function("document.querySelector('#model-card').innerText.includes('training run')",
                                   timeout=30_000)
            page.get_by_role("tab", name="Image").click()
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "photo.png"))
            page.get_by_role("button", name="Translate", exact=True).click()
            page.locator("#translation-details").get_by_text("32×32 px whole").wait_for(timeout=60_000)
            assert "run my_pictures_pix2pix" in page.locator("#translation-details").inner_text()
            page.screenshot(path=str(shots / "train_model_in_translator.png"), full_page=True)
        finally:
            browser.close()
            app.close()
            service.runs.close()


def bundled_samples_as_pairs(root: Path) -> Path:
    """The bundled model's card samples (aerial | its map | the true map, 256 px each) as a paired
    folder of aerial | true map: data the model was made for, small enough for a test."""
    from PIL import Image

    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for sample in sorted((BUNDLED.parent / "samples").glob("sample_*.jpg")):
            with Image.open(sample) as triplet:
                pair = Image.new("RGB", (512, 256))
                pair.paste(triplet.crop((0, 0, 256, 256)), (0, 0))
                pair.paste(triplet.crop((512, 0, 768, 256)), (256, 0))
                pair.save(root / split / f"{sample.stem}.png")
    return root


@pytest.mark.slow
def test_browser_starts_from_the_bundled_model_and_refuses_a_bad_upload_in_place(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from img2img.training.run_folder import RunFolder

    bundled_samples_as_pairs(tmp_path / "data" / "maps")
    models = tmp_path / "models" / "maps_aerial2map"
    models.mkdir(parents=True)
    for name in ("model.pt", "README.md"):  # the bundled model as the app's models folder holds it
        (models / name).symlink_to(BUNDLED.parent / name)
    (tmp_path / "broken.zip").write_bytes(b"not a zip at all")
    service = TrainingService(tmp_path / "data", tmp_path / "runs", models_dir=tmp_path / "models")
    service.runs.start_scheduler(0.5)
    app, url = launch(tmp_path / "models", tmp_path, training=service)
    shots = screenshot_dir(tmp_path)
    steps = {"model.ndf": "16", "data.num_workers": "0", "train.device": "cpu"}
    with playwright.sync_playwright() as p:
        browser, page = open_train_tab(p, tmp_path, url)
        try:
            # A refused upload: its reason where the data section shows its report, nothing else broken.
            page.locator("#train-upload input[type=file]").set_input_files(str(tmp_path / "broken.zip"))
            page.locator("#train-report").get_by_text("Not used: broken.zip: not a zip file").wait_for(timeout=60_000)
            assert page.locator(".error").count() == 0  # no red badge anywhere
            page.screenshot(path=str(shots / "train_refused_upload.png"), full_page=True)
            page.locator("#train-data input").click()
            page.locator("#train-data input").fill("maps")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Enter")
            page.locator("#train-report").get_by_text("3 pairs").first.wait_for(timeout=60_000)
            start_from = page.locator("#train-start-from")
            assert "maps_aerial2map" in start_from.inner_text() or "maps_aerial2map" in start_from.locator(
                "input").input_value()
            page.get_by_label("Custom: the length below").check()
            page.locator("#train-length input").fill("5")
            page.locator("#train-all-settings").get_by_text("All settings").click()
            page.get_by_text("model (fixed once trained)", exact=True).click()
            page.get_by_label("--ndf").fill("16")
            page.get_by_text("data", exact=True).click()
            page.get_by_label("--num-workers").fill("0")
            page.locator("#train-command").get_by_text("--init-from").wait_for(timeout=30_000)
            page.locator("#train-start").click()
            page.locator("#train-status").get_by_text("finished").wait_for(timeout=240_000)
            page.screenshot(path=str(shots / "train_started_from_the_bundled_model.png"), full_page=True)
        finally:
            browser.close()
            app.close()
    # The same run from scratch, through the API: after the same 5 steps it is much further off.
    scratch = service.plan("maps", "pix2pix", "custom", 256, 5, "steps", {**steps, "model.netG": "unet_256",
                                                                           "model.ngf": "32", "model.norm": "instance"})
    name = service.start(scratch)
    deadline = time.monotonic() + 240
    while service.runs.view(name).state != "finished":
        assert time.monotonic() < deadline, service.runs.view(name)
        time.sleep(0.5)
    service.runs.close()
    l1 = {}
    for run in service.list_runs():
        rows = [r for r in RunFolder(tmp_path / "runs" / run.name).metrics() if r.kind == "eval"]
        l1[run.name] = rows[-1].values["val_l1"]
    started, fresh = l1["maps_pix2pix"], l1[name]
    assert started < 0.6 * fresh, l1
