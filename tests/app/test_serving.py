"""Serving the app to others: logins, refusals from headers over HTTP, and work that stops when
the client cancels."""
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    cancel_when_busy,
    cpu_rate,
    launch,
    nifti_header_only,
    npy_header_only,
    png_header_only,
    random_image,
    tiff_planes_header,
)

from img2img.app.main import main as serve
from img2img.app.page import build_app
from img2img.errors import Img2ImgError
from img2img.service.serving import exposure_problem, parse_auth


def test_serving_beyond_this_machine_needs_a_login_or_says_it_is_anonymous(capsys):
    assert exposure_problem("127.0.0.1", share=False, has_auth=False, allow_anonymous=False) is None
    assert exposure_problem("0.0.0.0", share=False, has_auth=True, allow_anonymous=False) is None
    assert exposure_problem("0.0.0.0", share=False, has_auth=False, allow_anonymous=True) is None
    assert "--auth" in exposure_problem("127.0.0.1", share=True, has_auth=False, allow_anonymous=False)
    assert serve(["--host", "0.0.0.0", "--checkpoints", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--host 0.0.0.0 without a login" in err[0] and "--allow-anonymous" in err[0]


def test_logins_come_from_flags_and_a_file(tmp_path):
    (tmp_path / "logins").write_text("# lab\nann:secret\n\nbob:pass:with:colons\n")
    assert parse_auth(["me:pw"], tmp_path / "logins") == [("me", "pw"), ("ann", "secret"), ("bob", "pass:with:colons")]
    with pytest.raises(Img2ImgError, match="auth entry 1: expected user:password"):
        parse_auth(["nopassword"])


@pytest.fixture(scope="module")
def served(models_dir, tmp_path_factory):
    app, url = launch(models_dir, tmp_path_factory.mktemp("served"), max_pixels=40_000_000)
    yield url
    app.close()
    app.workdir.cleanup()


@pytest.mark.slow
def test_file_bombs_sent_over_http_are_refused_in_one_line_for_little_cpu(served, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    bombs = {
        tiff_planes_header(tmp_path / "planes.tif", 32, 4000, 4000): "over the limit of 1,024 MB",
        npy_header_only(tmp_path / "huge.npy", (30000, 30000)): "over the 40 MP limit",
        nifti_header_only(tmp_path / "cube.nii.gz", (2048, 2048, 2048)): "8,589,934,592 voxels",
        nifti_header_only(tmp_path / "slices.nii.gz", (1, 1, 32767)): "32,767 slices",
    }
    for path, reason in bombs.items():
        start = time.process_time()
        with pytest.raises(Exception) as refused:
            client.predict(handle_file(str(path)), "tiny.pt", "AtoB", api_name="/translate_file")
        message = str(refused.value)
        assert reason in message and "\n" not in message.strip() and str(tmp_path) not in message, message
        assert time.process_time() - start < 2.0, path.name  # the app and this client together


@pytest.mark.slow
def test_a_cancelled_translation_stops_and_the_cpu_goes_idle(served, tmp_path):
    from gradio_client import Client, handle_file

    image = tmp_path / "big.png"
    random_image(np.random.default_rng(0), 4000, 4000).save(image, compress_level=1)
    client = Client(served, verbose=False)
    job = client.submit(handle_file(str(image)), "tiny.pt", "AtoB", api_name="/translate")
    cancel_when_busy(job, "the tiles")


@pytest.mark.slow
def test_a_client_that_disconnects_stops_its_translation(served, tmp_path):
    """A browser tab closed mid-translation: its event stream ends, and the work stops."""
    import uuid

    import httpx

    image = tmp_path / "big.png"
    random_image(np.random.default_rng(1), 4000, 4000).save(image, compress_level=1)
    api = served + "gradio_api/"
    config = httpx.get(served + "config").json()
    fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "translate")
    with open(image, "rb") as f:
        uploaded = httpx.post(api + "upload", files={"files": ("big.png", f, "image/png")}, timeout=60).json()[0]
    session = uuid.uuid4().hex
    joined = httpx.post(api + "queue/join", json={
        # Every input of the event: the image, model, direction and a UNSB model's steps (ignored here).
        "data": [{"path": uploaded, "meta": {"_type": "gradio.FileData"}, "orig_name": "big.png"}, "tiny.pt", "AtoB",
                 1],
        "fn_index": fn_index, "session_hash": session, "event_data": None})
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", api + "queue/data", params={"session_hash": session}, timeout=60) as events:
        lines = events.iter_lines()
        while "process_starts" not in next(lines):
            pass
        deadline = time.monotonic() + 30
        while cpu_rate(0.5) < 0.3:  # the tiles are running
            assert time.monotonic() < deadline
    gone = time.monotonic()  # the stream is closed: the client went away
    while cpu_rate(0.5) > 0.15:
        assert time.monotonic() - gone < 5, "still busy 5 s after the client left"


def start_app(models_dir, tmp_path, *flags):
    """app.py as an operator runs it, in its own process, with its temporary folders in tmp_path."""
    import os
    import subprocess
    import sys

    import httpx
    from helpers import ROOT, free_port

    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", str(models_dir), "--port",
                                str(port), "--device", "cpu", *flags], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "config", timeout=1)
            return process, url
        except httpx.HTTPError:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the app did not start in 60 s")


def leftovers(tmp_path) -> list[str]:
    ours = [str(p) for p in (tmp_path / "tmp").glob("img2img_app_*")]
    return ours + [str(p) for p in (tmp_path / "gradio").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_sigterm_cleans_up_as_ctrl_c_does(models_dir, tmp_path):
    import signal

    from gradio_client import Client, handle_file

    process, url = start_app(models_dir, tmp_path)
    try:
        # An upload refused from its header: no model needs loading for it.
        bomb = png_header_only(tmp_path / "wide.png", 9000, 9000)
        with pytest.raises(Exception, match="over the 40 MP limit"):
            Client(url, verbose=False).predict(handle_file(str(bomb)), "tiny.pt", "AtoB", api_name="/translate")
        assert leftovers(tmp_path)  # the upload and the work folder, while it runs
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert leftovers(tmp_path) == []


def test_with_logins_nothing_is_served_before_one(models_dir, tmp_path):
    import httpx
    from helpers import free_port

    from img2img.app.glue import launch_options

    app = build_app(models_dir, device="cpu")
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               **launch_options([("ann", "secret")]))
    url = f"http://127.0.0.1:{port}/"
    try:
        assert httpx.get(url + "config").status_code == 401
        # The login page: no description of the API it guards (Gradio embeds one in every page).
        page = httpx.get(url).text
        assert "window.gradio_api_info = null;" in page and "/translate_batch" not in page
        assert httpx.post(url + "login", data={"username": "ann", "password": "wrong"}).status_code == 400
        login = httpx.post(url + "login", data={"username": "ann", "password": "secret"})
        assert login.status_code == 200 and httpx.get(url + "config", cookies=login.cookies).status_code == 200
        assert "/translate_batch" in httpx.get(url, cookies=login.cookies).text  # logged in: the API is there
    finally:
        app.close()
        app.workdir.cleanup()


def test_the_default_model_is_loaded_before_the_first_request(models_dir):
    app = build_app(models_dir, device="cpu")
    try:
        assert app.preload() is not None
    finally:
        app.workdir.cleanup()


@pytest.mark.slow
def test_short_requests_leave_a_long_batchs_folder_alone(models_dir, tmp_path, monkeypatch):
    """Each request's folder is its own: others ending, or starting, never remove it (before,
    a new request removed folders by their age, and a 10-minute batch lost its zip)."""
    import zipfile

    from gradio_client import Client, handle_file

    from img2img.translate.translator import NamedPixels, Translator

    translate = Translator.translate_inputs

    def slowed(self, items, *args, **kwargs):
        if any(isinstance(item, NamedPixels) and item.pixels.shape[:2] == (48, 48) for item in items):
            time.sleep(0.5)  # the batch's images only
        return translate(self, items, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate_inputs", slowed)
    app, url = launch(models_dir, tmp_path)
    try:
        rng = np.random.default_rng(0)
        batch = []
        for i in range(6):
            random_image(rng, 48, 48).save(tmp_path / f"b{i}.png")
            batch.append(handle_file(str(tmp_path / f"b{i}.png")))
        random_image(rng, 40, 40).save(tmp_path / "short.png")
        client = Client(url, verbose=False)
        job = client.submit(batch, "tiny.pt", "AtoB", api_name="/translate_batch")
        work = Path(app.workdir.name)
        deadline = time.monotonic() + 30
        while not list(work.glob("request_*")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        long_folder = next(work.glob("request_*"))
        for _ in range(3):
            Client(url, verbose=False).predict(handle_file(str(tmp_path / "short.png")), api_name="/translate")
            assert long_folder.is_dir()
        _, archive, status = job.result(timeout=60)
        assert "Translated 6 of 6" in status
        assert len(zipfile.ZipFile(archive).namelist()) == 6
        assert not list(work.glob("request_*"))  # each request removed its own folder
    finally:
        app.close()
        app.workdir.cleanup()


@pytest.mark.slow
def test_a_volume_through_a_model_with_three_output_channels_round_trips(tmp_path):
    """A grey-to-colour model writes a 4D NIfTI (X x Y x Z x 3); the app reads it back for its
    preview (before, it refused its own output after the whole run)."""
    import shutil

    import nibabel
    from helpers import TINY_PIX2PIX

    from img2img.cli import main
    from img2img.io.readers import read_volume
    from img2img.service.translation import TranslationService

    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 1)):
        for side in "AB":
            (tmp_path / "data" / split / side).mkdir(parents=True)
        for i in range(n):
            image = random_image(rng, 32, 32)
            image.convert("L").save(tmp_path / "data" / split / "A" / f"{i}.png")
            image.save(tmp_path / "data" / split / "B" / f"{i}.png")
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--max-steps", "1",
                 *TINY_PIX2PIX]) == 0
    (tmp_path / "models").mkdir()
    shutil.copy(tmp_path / "run" / "checkpoints" / "latest.pt", tmp_path / "models" / "grey2rgb.pt")
    volume = tmp_path / "scan.nii.gz"
    nibabel.save(nibabel.Nifti1Image(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), np.eye(4)), volume)
    service = TranslationService(tmp_path / "models", tmp_path)
    with service.request_folder() as folder:
        result = service.translate_file(str(volume), None, "AtoB", folder)
        assert read_volume(result.path)[0].shape == (32, 32, 4, 3)
        assert result.output_preview.is_file() and "a volume of 4 slices" in result.details


def test_a_webcam_frame_over_the_live_limit_is_refused_before_it_is_scaled(models_dir, tmp_path):
    from img2img.service.translation import MAX_LIVE_PIXELS, ServiceError, TranslationService

    service = TranslationService(models_dir, tmp_path)
    side = int(MAX_LIVE_PIXELS ** 0.5) + 1
    with pytest.raises(ServiceError, match=f"a webcam frame of {side}x{side} is over"):
        service.translate_frame(np.zeros((side, side, 3), np.uint8), "tiny.pt", "AtoB", 256, None)
    frame, rate, times = service.translate_frame(np.zeros((48, 64, 3), np.uint8), "tiny.pt", "AtoB", 32, None)
    assert frame.shape == (24, 32, 3) and len(times) == 1


def test_an_upload_over_the_size_limit_is_refused_and_a_broken_one_gets_one_line(models_dir, tmp_path):
    import httpx
    from gradio_client import Client, handle_file

    app, url = launch(models_dir, tmp_path, max_upload_mb=1)
    try:
        big = tmp_path / "big.png"
        big.write_bytes(b"\0" * (2 << 20))
        with open(big, "rb") as f:
            refused = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", f, "image/png")})
        assert refused.status_code == 413
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"not an image")
        with pytest.raises(Exception) as answer:
            Client(url, verbose=False).predict(handle_file(str(broken)), api_name="/translate")
        message = str(answer.value)
        assert "broken.png: cannot read image" in message and str(tmp_path) not in message
    finally:
        app.close()
        app.workdir.cleanup()


def test_wrong_passwords_are_answered_ever_more_slowly_and_the_right_one_still_works(caplog):
    from img2img.service.serving import LoginThrottle

    waited = []
    check = LoginThrottle([("ann", "secret")], sleep=waited.append)
    with caplog.at_level("WARNING", logger="img2img"):
        assert not any(check("ann", f"guess{i}") for i in range(200))
    assert len(waited) == 200 - check.free and sum(waited) >= 60  # the first few answers are free
    assert max(waited) == check.max_delay
    assert "login refused for 'ann': 200 wrong in a row" in caplog.text and "guess" not in caplog.text
    assert check("ann", "secret")  # slowly, but it works
    assert check.delay("ann") == 0  # and the count starts again
    waited.clear()
    assert not any(check(f"user{i}", "x") for i in range(100))  # many logins, one guess each
    assert sum(waited) >= 20


def long_work(kind: str, folder: Path) -> tuple[str, tuple]:
    """(the service's method, its first arguments): each kind of work, many seconds long."""
    import nibabel
    from helpers import make_video

    rng = np.random.default_rng(0)
    if kind == "volume":
        volume = rng.integers(0, 255, (128, 128, 2000)).astype(np.uint8)
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), folder / "long.nii.gz")
        return "translate_file", (str(folder / "long.nii.gz"),)
    if kind == "scientific file":  # one large 16-bit image, tiled
        np.save(folder / "large.npy", rng.integers(0, 65535, (3000, 3000), dtype=np.uint16))
        return "translate_file", (str(folder / "large.npy"),)
    if kind == "video":
        return "translate_video", (str(make_video(folder / "long.mp4", frames=400, size=(256, 192), audio=False)),)
    paths = []  # a batch
    for i in range(40):
        random_image(rng, 512, 512).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    return "translate_many", (paths,)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["volume", "scientific file", "video", "batch"])
def test_each_kind_of_work_stops_at_its_next_check_past_the_time_limit(models_dir, tmp_path, kind):
    from img2img.cancellation import StopSignal, stop_on
    from img2img.service.translation import TranslationService

    method, inputs = long_work(kind, tmp_path)
    service = TranslationService(models_dir, tmp_path, device="cpu")
    service.load("tiny.pt", "AtoB")  # loading is not what is timed
    start = time.monotonic()
    with pytest.raises(Img2ImgError, match="stopped after the time limit of 0.5 s"), \
            stop_on(StopSignal(time_limit_s=0.5)), service.request_folder() as folder:
        getattr(service, method)(*inputs, "tiny.pt", "AtoB", folder)
    assert time.monotonic() - start < 2.0


def test_work_stopped_by_a_cancel_leaves_no_unretrieved_error_for_asyncio_to_print():
    import asyncio
    import gc

    from img2img.cancellation import StopSignal, check_stop
    from img2img.service.serving import run_stoppable

    def work():
        while True:
            check_stop()
            time.sleep(0.01)

    async def cancel_it() -> list:
        reported = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context["message"]))
        request = asyncio.ensure_future(run_stoppable(work, StopSignal(), lambda: False))
        await asyncio.sleep(0.2)
        request.cancel()
        await asyncio.sleep(0.3)  # the work stops at its next check
        gc.collect()  # asyncio reports an error nobody took when its task is collected
        await asyncio.sleep(0.05)
        return reported

    assert asyncio.run(cancel_it()) == []
