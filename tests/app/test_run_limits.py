"""A shared server's bounds on training from the page: settings, the run's estimated memory and
disk, the runs folder, the queue, owners, server paths, and settings that cannot start a run."""
import sys
import time

import pytest
from helpers import make_paired

from img2img.errors import Img2ImgError
from img2img.service.run_limits import TrainingLimits
from img2img.service.runs import RunManager
from img2img.service.training import TrainingService

TINY = {"model.netG": "unet_32", "model.ngf": "8", "model.ndf": "8", "data.num_workers": "0", "train.device": "cpu"}


@pytest.fixture
def service(tmp_path):
    make_paired(tmp_path / "data" / "pairs", n_train=6, n_val=2)
    # --max-runs 0: runs wait in the queue, and no process starts.
    return TrainingService(tmp_path / "data", tmp_path / "runs", max_runs=0)


def plan(service, **settings):
    return service.plan("pairs", "pix2pix", "custom", 32, 10, "steps", {**TINY, **settings})


@pytest.mark.parametrize("setting,value,words", [
    ("data.num_workers", "500", "--num-workers 500: a run from this server's page may use at most 4 (--max-num-workers)"),
    ("model.ngf", "100000", "--ngf 100000: a run from this server's page may use at most 256 (--max-ngf)"),
    ("data.batch_size", "1000000", "--batch-size 1000000: a run from this server's page may use at most 64"),
])
def test_settings_past_the_servers_bounds_are_refused_naming_the_flag(service, setting, value, words):
    with pytest.raises(Img2ImgError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan(service, **{setting: value})


def test_a_runs_memory_and_disk_are_estimated_and_bounded_before_it_starts(service, tmp_path):
    estimate = plan(service).estimate
    assert estimate.total_steps == 10 and 0 < estimate.memory_bytes < 1e9 and 0 < estimate.disk_bytes < 1e8
    small = TrainingService(tmp_path / "data", tmp_path / "runs", max_runs=0,
                            run_limits=TrainingLimits(max_run_memory_mb=1))
    with pytest.raises(Img2ImgError, match=r"memory at its peak, more than the 1 MB .*--max-run-memory-mb"):
        plan(small)
    full = TrainingService(tmp_path / "data", tmp_path / "runs", max_runs=0, run_limits=TrainingLimits(max_runs_disk=1))
    (tmp_path / "runs" / "old").mkdir()
    (tmp_path / "runs" / "old" / "big.pt").write_bytes(b"\0" * 2_000_000)
    with pytest.raises(Img2ImgError, match=r"the runs folder holds 2 MB .*--max-runs-disk"):
        plan(full)


def test_the_queue_is_bounded_in_all_and_per_login(service, tmp_path):
    runs = RunManager(tmp_path / "queue", max_runs=0, run_limits=TrainingLimits(max_queued_runs=3,
                                                                                  max_queued_runs_per_user=2))
    cfg = plan(service).cfg
    runs.submit(cfg, "a1", "ann")
    runs.submit(cfg, "a2", "ann")
    with pytest.raises(Img2ImgError, match="ann: 2 of your runs are waiting already"):
        runs.submit(cfg, "a3", "ann")
    runs.submit(cfg, "b1", "bob")
    with pytest.raises(Img2ImgError, match="3 runs are waiting already.*--max-queued-runs"):
        runs.submit(cfg, "b2", "bob")


def test_only_a_runs_owner_or_an_admin_may_stop_resume_delete_or_use_it(service, tmp_path):
    runs = RunManager(tmp_path / "owned", max_runs=0, admins=("root",))
    cfg = plan(service).cfg
    name = runs.submit(cfg, "anns", "ann")
    for act in (runs.stop, runs.resume, runs.delete):
        with pytest.raises(Img2ImgError, match=f"{name}: is ann's run; only its owner or an admin"):
            act(name, "bob")
    assert runs.view(name).state == "queued"  # bob may watch
    runs.stop(name, "ann")
    assert runs.view(name).state == "cancelled"
    runs.delete(name, "root")
    shared = RunManager(tmp_path / "loopback", max_runs=0)
    other = shared.submit(cfg, "anyone", None)  # no logins: one user
    shared.stop(other, None)


def test_server_paths_in_settings_stay_inside_the_data_root(service, tmp_path):
    for outside in ("/etc", "../runs", str(tmp_path / "runs")):
        with pytest.raises(Img2ImgError):
            plan(service, **{"data.val_dir": outside})
        with pytest.raises(Img2ImgError):
            plan(service, **{"train.fid_val": outside})
    assert plan(service, **{"data.val_dir": "pairs/val"}).cfg.data.val_dir == str((tmp_path / "data/pairs/val").resolve())


def test_a_control_character_in_a_setting_is_refused_in_one_line(service):
    with pytest.raises(Img2ImgError, match=r"^--domain-a: 'x\\x00y' holds a control character$"):
        plan(service, **{"data.domain_a": "x\0y"})


def test_a_run_that_cannot_start_is_failed_and_the_queue_moves_on(service, tmp_path):
    runs = RunManager(tmp_path / "broken", max_runs=1, train_command=(str(tmp_path / "no_such_python"),))
    cfg = plan(service).cfg
    first, second = runs.submit(cfg, "first"), runs.submit(cfg, "second")
    deadline = time.monotonic() + 10
    while runs.view(second).state == "queued" and time.monotonic() < deadline:
        runs.tick()
        time.sleep(0.05)
    for name in (first, second):
        view = runs.view(name)
        assert view.state == "failed" and view.error.startswith("the run could not start:"), view
    ok = RunManager(tmp_path / "broken", max_runs=1, train_command=(sys.executable, "-c", "pass"))
    assert ok.view(first).can_resume


@pytest.mark.slow
def test_an_upload_must_be_a_file_this_server_received_and_says_nothing_of_others(tmp_path, capfd):
    import zipfile

    from gradio_client import Client, handle_file
    from helpers import launch

    from img2img.log import log_to_console

    log_to_console()  # as `img2img app` does
    make_paired(tmp_path / "pairs", n_train=2, n_val=0)
    with zipfile.ZipFile(tmp_path / "pairs.zip", "w") as archive:
        for path in (tmp_path / "pairs").rglob("*.png"):
            archive.write(path, path.relative_to(tmp_path / "pairs"))
    service = TrainingService(tmp_path / "data", tmp_path / "runs", max_runs=0)
    app, url = launch(tmp_path / "no_models", tmp_path, training=service)
    try:
        client = Client(url, verbose=False)
        refusals = set()
        for path in (str(tmp_path / "pairs.zip"), "/no/such/file.zip"):  # exists, and does not: one answer
            with pytest.raises(Exception) as refused:
                client.predict({"path": path}, api_name="/train_upload")
            refusals.add(str(refused.value).splitlines()[-1])
        assert len(refusals) == 1 and "not an upload of this server" in refusals.pop()
        assert client.predict(handle_file(str(tmp_path / "pairs.zip")), api_name="/train_upload")["method"] == "pix2pix"
    finally:
        app.close()
    log = capfd.readouterr()
    refused = [line for line in log.out.splitlines() if line.startswith("refused: ")]
    assert len(refused) == 2 and "Traceback" not in log.err + log.out, log  # one line each in the server's log


@pytest.mark.slow
def test_unpacking_an_upload_stops_when_its_client_cancels(tmp_path):
    import zipfile

    from gradio_client import Client, handle_file
    from helpers import cancel_when_busy, launch, png_header_only

    tiny = png_header_only(tmp_path / "tiny.png", 1, 1).read_bytes()
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as archive:  # many members, each costs a file
        for i in range(40_000):
            archive.writestr(f"many/train/{i:05d}.png", tiny)
    service = TrainingService(tmp_path / "data", tmp_path / "runs", max_runs=0)
    app, url = launch(tmp_path / "no_models", tmp_path, training=service)
    try:
        job = Client(url, verbose=False).submit(handle_file(str(tmp_path / "many.zip")), api_name="/train_upload")
        cancel_when_busy(job, "unpacking")
        assert not list((tmp_path / "data").rglob("*.png"))  # a stopped upload leaves nothing behind
    finally:
        app.close()
