import os
import re
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import (
    ROOT,
    chromium_path,
    free_port,
    launch,
    make_checkpoint,
    make_paired,
    open_browser,
    random_image,
    screenshot_dir,
)
from PIL import Image

from img2img.app.main import build_parser
from img2img.app.page import build_app
from img2img.cli import main


@pytest.fixture(scope="module")
def app_url(models_dir, tmp_path_factory):
    app, url = launch(models_dir, tmp_path_factory.mktemp("srv"))
    yield url
    app.close()


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def call(client, path):
    from gradio_client import handle_file

    output, _ = client.predict(handle_file(str(path)), api_name="/translate")
    return Image.open(output)


@pytest.mark.slow
@pytest.mark.parametrize("w,h", [(37, 53), (300, 200), (8, 8)])
def test_translate_endpoint_returns_the_input_size(client, tmp_path, w, h):
    random_image(np.random.default_rng(0), w, h).save(tmp_path / "in.png")
    assert call(client, tmp_path / "in.png").size == (w, h)


def test_concurrent_users_get_their_own_results(app_url, models_dir, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    from img2img.translate.translator import Translator

    rng = np.random.default_rng(5)
    sizes = [(40 + 8 * i, 64 - 4 * i) for i in range(6)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        random_image(rng, w, h).save(tmp_path / f"user{i}.png")
        paths.append(tmp_path / f"user{i}.png")
    expected = Translator.from_checkpoint(models_dir / "tiny.pt", device="cpu").translate(paths)

    def one_user(i: int) -> tuple[np.ndarray, str]:
        output, details = Client(app_url, verbose=False).predict(handle_file(str(paths[i])), api_name="/translate")
        return np.asarray(Image.open(output).convert("RGB"), int), details

    with ThreadPoolExecutor(len(paths)) as pool:
        results = list(pool.map(one_user, range(len(paths))))
    for (result, details), want, (w, h) in zip(results, expected, sizes):
        assert result.shape == (h, w, 3) and f"{w}×{h} px" in details
        assert np.abs(result - np.asarray(want, int)).max() <= 1


def test_translation_details_name_the_model_settings_and_time(client, tmp_path):
    from gradio_client import handle_file

    random_image(np.random.default_rng(0), 50, 30).save(tmp_path / "in.png")
    after, details = client.predict(handle_file(str(tmp_path / "in.png")), api_name="/translate")
    assert Image.open(after).size == (50, 30)
    assert details.startswith("**tiny**, A → B (pix2pix, trained at 32 px on data); 50×30 px whole, ")
    assert details.endswith(" s") and re.search(r"fp32 \((onnxruntime|PyTorch)\) on cpu", details)


def test_each_tab_says_which_precision_served_it(tmp_path):
    from img2img.service.translation import TranslationService

    data = make_paired(tmp_path / "data", n_val=3)
    (tmp_path / "models").mkdir()
    make_checkpoint("pix2pix", tmp_path / "models" / "small.pt", model=dict(netG="unet_32", ngf=8), root=str(data),
                    size=32, load_size=32)
    random_image(np.random.default_rng(0), 32, 32).save(tmp_path / "in.png")
    service = TranslationService(tmp_path / "models", tmp_path, device="cpu", precision="int8")
    with service.request_folder() as folder:
        _, details = service.translate_image(str(tmp_path / "in.png"), None, "AtoB", folder)
        _, _, status = service.translate_many([str(tmp_path / "in.png")], None, "AtoB", folder)
    _, rate, _ = service.translate_frame(np.zeros((32, 32, 3), np.uint8), None, "AtoB", 32, None)
    for said in (details, status, rate):
        assert "int8 (onnxruntime) on cpu" in said
    assert build_parser().parse_args(["--precision", "int8"]).precision == "int8"


def test_a_model_prepared_in_the_background_is_ready_and_a_rewritten_one_is_not(tmp_path):
    from img2img.service.translation import TranslationService

    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "small.pt"
    make_checkpoint("pix2pix", path, model=dict(netG="unet_32", ngf=8), size=32, load_size=32)
    service = TranslationService(tmp_path / "models", tmp_path, device="cpu", precision="fp32")
    assert not service.ready("small.pt")  # the Image tab says it is loading it
    service.prepare("small.pt")
    deadline = time.monotonic() + 60
    while not service.ready("small.pt"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new checkpoint under the same name
    assert not service.ready("small.pt")


def test_large_uploads_are_tiled_and_say_so(models_dir, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    from img2img.translate import tiling as tiling_module

    monkeypatch.setattr(tiling_module, "AUTO_TILE_PIXELS", 200 * 200)
    app, url = launch(models_dir, tmp_path)
    try:
        random_image(np.random.default_rng(0), 300, 200).save(tmp_path / "wide.png")
        output, details = Client(url, verbose=False).predict(handle_file(str(tmp_path / "wide.png")),
                                                              api_name="/translate")
        assert Image.open(output).size == (300, 200)
        assert "300×200 px in 512 px tiles, overlap 64" in details
    finally:
        app.close()


def make_input(kind: str, folder: Path) -> tuple[Path, tuple[int, int]]:
    base = random_image(np.random.default_rng(1), 40, 24)
    if kind == "exif":
        exif = base.getexif()
        exif[0x0112] = 6
        base.save(folder / "x.jpg", exif=exif)
        return folder / "x.jpg", (24, 40)
    if kind == "grey":
        base.convert("L").save(folder / "x.png")
    elif kind == "rgba":
        base.convert("RGBA").save(folder / "x.png")
    elif kind == "16bit":
        Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257)).save(folder / "x.png")
    return folder / "x.png", (40, 24)


@pytest.mark.parametrize("kind", ["exif", "grey", "rgba", "16bit"])
def test_unusual_inputs_translate(client, tmp_path, kind):
    path, size = make_input(kind, tmp_path)
    out = call(client, path)
    assert out.size == size and out.mode == "RGB"


def test_too_large_image_gets_a_clear_error(client, tmp_path):
    from gradio_client.exceptions import AppError

    Image.new("RGB", (1100, 1000)).save(tmp_path / "big.png")
    with pytest.raises(AppError, match="over the 1 MP limit"):
        call(client, tmp_path / "big.png")


def test_app_lists_models_and_skips_broken_files(app_url):
    config = httpx.get(app_url + "config", timeout=30).text
    assert "tiny: pix2pix on data, AtoB" in config
    assert "broken.pt: not a readable img2img checkpoint" in config


def test_app_without_models_starts_and_explains(tmp_path):
    app, url = launch(tmp_path / "empty", tmp_path)
    try:
        config = httpx.get(url + "config", timeout=30).text
        assert "No model yet" in config and "img2img demo" in config and "img2img train" in config
    finally:
        app.close()


def test_binds_to_loopback_and_shares_nothing_by_default():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.share, args.checkpoints) == ("127.0.0.1", 7860, False, ["checkpoints"])


def test_serves_no_files_outside_its_folders(app_url):
    response = httpx.get(app_url + "gradio_api/file=/etc/passwd", timeout=30)
    assert response.status_code in (403, 404) and "root:" not in response.text


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="no Chromium: install Debian's chromium package to run")
def test_browser_translates_one_image_and_a_batch_with_every_control(models_dir, tmp_path, monkeypatch):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from img2img.translate import tiling as tiling_module
    from img2img.translate.translator import Translator

    # The fake camera's 1920x1440 photo is then tiled.
    monkeypatch.setattr(tiling_module, "AUTO_TILE_PIXELS", 1_000_000)
    translate = Translator.translate_inputs
    slow = {"seconds": 0.0}

    def slowed(self, *args, **kwargs):  # the batch's progress bar has time to show
        time.sleep(slow["seconds"])
        return translate(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate_inputs", slowed)
    app, server = launch(models_dir, tmp_path, max_pixels=4_000_000, auth=[("ann", "secret")])
    shots = screenshot_dir(tmp_path)
    rng = np.random.default_rng(0)
    for name, (w, h) in {"in.png": (64, 48), "second.png": (40, 40)}.items():
        random_image(rng, w, h).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with playwright.sync_playwright() as p:
        # A fresh profile folder; never a downloaded browser. Chromium's fake camera stands in
        # for a webcam.
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium_path(),
            headless=True,
            viewport={"width": 1280, "height": 1100},
            permissions=["camera"],
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream"],
        )
        try:
            page = browser.new_page()
            page.goto(server)
            # A login page first (the app was started with --auth), then the translator.
            page.get_by_label("username").fill("ann")
            page.get_by_label("password").fill("secret")
            page.screenshot(path=str(shots / "login.png"))
            page.get_by_role("button", name="Login").click()
            # Single image: the model is named by what it does; upload, translate, see the
            # output, the before/after slider and the details line.
            page.get_by_role("button", name="Translate", exact=True).wait_for(timeout=30_000)
            assert page.get_by_label("Model").input_value() == "tiny: pix2pix on data, AtoB"
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "in.png"))
            page.get_by_role("button", name="Translate", exact=True).click()
            details = page.locator("#translation-details")
            details.get_by_text("64×48 px whole").wait_for(timeout=60_000)
            page.locator("#before-after img").nth(1).wait_for(timeout=30_000)  # filled by a follow-up event
            assert page.locator("#before-after img").count() == 2
            served = "img[src*='gradio_api/file=']"
            assert page.locator(served).count() >= 4  # input, output, and the slider's two
            page.screenshot(path=str(shots / "single_image.png"), full_page=True)
            # The webcam as the source: a photo from Chromium's fake camera is translated too.
            page.get_by_label("Capture from camera").first.click()
            page.get_by_text("Click to Access Webcam").click()
            page.locator("video[data-testid=webcam-video]:not(.hide)").wait_for(timeout=30_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "webcam.png"), full_page=True)
            page.locator("[title='capture photo']").click()
            page.locator("video[data-testid=webcam-video]").first.wait_for(state="hidden", timeout=30_000)
            page.get_by_role("button", name="Translate", exact=True).click()
            details.get_by_text("1920×1440 px in 512 px tiles").wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "webcam_translated.png"), full_page=True)
            # Batch: a progress bar while it runs, then the results, the zip and the skipped file.
            page.get_by_role("tab", name="Batch").click()
            page.locator("input[type=file][multiple]").set_input_files(
                [str(tmp_path / n) for n in ("in.png", "second.png", "broken.png")])
            slow["seconds"] = 1.5
            page.get_by_role("button", name="Translate all").click()
            page.get_by_text("Translating").first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "batch_progress.png"), full_page=True)
            status = page.locator("#batch-status")
            status.get_by_text("Translated 2 of 3 images").wait_for(timeout=60_000)
            assert "broken.png: cannot read image" in status.inner_text() and "/tmp" not in status.inner_text()
            page.screenshot(path=str(shots / "batch.png"), full_page=True)
        finally:
            browser.close()
            app.close()
    assert all((shots / n).stat().st_size > 0
               for n in ("single_image.png", "webcam.png", "webcam_translated.png", "batch_progress.png", "batch.png"))


def test_the_app_leaves_no_temporary_files_behind(models_dir, tmp_path, monkeypatch):
    import tempfile

    from gradio_client import Client, handle_file

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    app, url = launch(models_dir, tmp_path)
    try:
        image = tmp_path / "in.png"
        random_image(np.random.default_rng(0), 40, 40).save(image)
        _, archive, status = Client(url, verbose=False).predict(
            [handle_file(str(image))], "tiny.pt", "AtoB", api_name="/translate_batch")
        assert "Translated 1 of 1" in status
        ours = list((tmp_path / "tmp").glob("img2img_*"))
        # The request's own folder went with it; Gradio keeps its copy of the zip.
        assert len(ours) == 1 and not list(ours[0].glob("request_*")) and Path(archive).is_file()
    finally:
        app.close()
        app.workdir.cleanup()
    assert not list((tmp_path / "tmp").glob("img2img_*"))


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="no Chromium: install Debian's chromium package to run")
def test_browser_adds_a_published_model_in_one_click_and_translates_with_it(models_dir, tmp_path):
    """Against a local server: a failing server is one line and changes nothing; then one click
    downloads horse2zebra with a progress bar, converts it, selects it with its card, and it
    translates an image."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    import torch
    from helpers import Server, canonical_resnet, randomise

    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(models_dir, checkpoints)
    published = Server()  # holds nothing yet: the first click meets a 404
    raw = tmp_path / "horse2zebra.pth"
    torch.save(randomise(canonical_resnet(n_blocks=6, ngf=8), 3).state_dict(), raw)
    port = free_port()
    app = build_app(checkpoints, device="cpu", published_url=published.url("/{name}.pth"))
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    shots = screenshot_dir(tmp_path)
    random_image(np.random.default_rng(0), 64, 48).save(tmp_path / "in.png")
    with playwright.sync_playwright() as p:
        browser = open_browser(p, tmp_path)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            button = page.get_by_role("button", name="horse → zebra · cyclegan · 46 MB")
            button.wait_for(timeout=30_000)
            assert page.get_by_role("button", name="photo → Monet painting · cyclegan · 46 MB").count() == 1
            page.screenshot(path=str(shots / "published_before.png"), full_page=True)
            status = page.locator("#published-status")
            button.click()
            status.get_by_text("Could not add horse → zebra").wait_for(timeout=30_000)
            assert "HTTP 404" in status.inner_text() and len(status.inner_text().strip().splitlines()) == 1
            assert page.get_by_label("Model").input_value() == "tiny: pix2pix on data, AtoB"
            published.files["/horse2zebra.pth"] = raw.read_bytes()
            published.chunk_delay = 0.3
            button.click()
            page.get_by_text(re.compile(r"Downloading horse → zebra: 0\.[1-9] of 0\.\d MB")).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "published_downloading.png"), full_page=True)
            status.get_by_text("Added horse → zebra").wait_for(timeout=60_000)
            assert page.get_by_label("Model").input_value() == "horse2zebra: horse → zebra"
            card = page.locator("#model-card").inner_text()
            assert "origin: CycleGAN (Zhu, Park, Isola & Efros 2017)" in card and "licence:" in card
            assert page.get_by_role("button", name="✓ horse → zebra, added").is_disabled()
            page.screenshot(path=str(shots / "published_after.png"), full_page=True)
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "in.png"))
            page.get_by_role("button", name="Translate", exact=True).click()
            page.locator("#translation-details").get_by_text("horse2zebra").wait_for(timeout=60_000)
            assert "64×48 px whole" in page.locator("#translation-details").inner_text()
            page.screenshot(path=str(shots / "published_translated.png"), full_page=True)
        finally:
            browser.close()
            app.close()
            published.httpd.shutdown()
    assert (checkpoints / "horse2zebra.pt").is_file()
    assert [path for path, _ in published.requests] == ["/horse2zebra.pth", "/horse2zebra.pth"]


def test_translate_video_endpoint_returns_the_video_with_its_sound(client, tmp_path):
    from gradio_client import handle_file
    from helpers import make_video

    from img2img.translate.video import video_info

    clip = make_video(tmp_path / "clip.mp4", frames=12, size=(64, 48))
    video, details = client.predict(handle_file(str(clip)), api_name="/translate_video")
    path = video["video"] if isinstance(video, dict) else video
    info = video_info(path)
    assert info["frames"] == 12 and info["sizes"] == {(64, 48)} and info["audio"] == "aac"
    assert "12 frames 64x48 at 24.000 fps" in details and "audio copied (aac)" in details


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="no Chromium: install Debian's chromium package to run")
def test_browser_shows_the_translator_first_and_translates_a_video_and_the_live_webcam(models_dir, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from helpers import make_video

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from app_live import BROWSER_ARGS

    clip = make_video(tmp_path / "clip.mp4", frames=12, size=(64, 48))
    app, server = launch(models_dir, tmp_path)
    shots = screenshot_dir(tmp_path)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium_path(), headless=True,
            viewport={"width": 1280, "height": 900}, permissions=["camera"], args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.goto(server)
            translate = page.get_by_role("button", name="Translate", exact=True)
            translate.wait_for(timeout=30_000)
            # The translator is on the first screen; the card and the published models come after it.
            page.screenshot(path=str(shots / "first_screen.png"))
            assert translate.bounding_box()["y"] + translate.bounding_box()["height"] < 900
            assert page.locator("#model-card").bounding_box()["y"] > translate.bounding_box()["y"]
            assert page.locator("#published-models").bounding_box()["y"] > translate.bounding_box()["y"]
            # Video: upload, translate with a progress bar, then the result plays in the page.
            page.get_by_role("tab", name="Video").click()
            page.locator("#video-input input[type=file]").set_input_files(str(clip))
            page.get_by_role("button", name="Translate video").click()
            page.locator("#video-details").get_by_text("12 frames 64x48").wait_for(timeout=60_000)
            assert "audio copied (aac)" in page.locator("#video-details").inner_text()
            assert page.locator("#video-result video").get_attribute("src")
            page.screenshot(path=str(shots / "video.png"), full_page=True)
            # Live: the fake camera streams, each frame is translated and the rate is shown.
            page.get_by_role("tab", name="Live").click()
            page.get_by_text("Click to Access Webcam").click()
            page.locator("#live-input button[aria-label='capture photo']").click()
            rate = page.locator("#live-rate")
            rate.get_by_text("frames/s translated").wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            assert float(re.search(r"([\d.]+) frames/s translated", rate.inner_text()).group(1)) > 0
            assert page.locator("#live-output img").count() == 1
            page.screenshot(path=str(shots / "live.png"), full_page=True)
        finally:
            browser.close()
            app.close()


def test_hub_models_join_the_shelf_at_start_and_from_the_page(hub, tmp_path):
    from img2img.service.translation import ServiceError, TranslationService

    for name, seed in (("someone/first", 0), ("someone/second", 1)):
        checkpoint = make_checkpoint("pix2pix", tmp_path / f"{seed}.pt", seed=seed, model=dict(netG="unet_32", ngf=8))
        folder = tmp_path / f"export{seed}"
        assert main(["export", str(checkpoint), str(folder), "--format", "safetensors"]) == 0
        commit = hub.add(name, {p.name: p.read_bytes() for p in folder.iterdir()})
    (tmp_path / "models").mkdir()
    service = TranslationService(tmp_path / "models", tmp_path, device="cpu", hub_models=["hf://someone/first"])
    assert [service.shelf.key(m) for m in service.shelf.models] == ["someone/first"]
    random_image(np.random.default_rng(0), 32, 32).save(tmp_path / "in.png")
    with service.request_folder() as folder:
        _, details = service.translate_image(str(tmp_path / "in.png"), "someone/first", "AtoB", folder)
    assert details.startswith("**someone/first**")
    info = service.add_hub(f"someone/second@{commit}")
    assert ("Hugging Face Hub", f"someone/second at commit {commit}") in info.facts
    assert [service.shelf.key(m) for m in service.shelf.models] == ["someone/first", "someone/second"]
    with pytest.raises(ServiceError, match="no model repo someone/absent"):
        service.add_hub("someone/absent")
    assert build_parser().parse_args(["--checkpoints", "models", "hf://someone/first"]).checkpoints == [
        "models", "hf://someone/first"]


def test_a_hub_model_over_the_download_limit_is_refused_before_any_file_is_fetched(hub, tmp_path):
    from img2img.service.translation import ServiceError, TranslationService

    checkpoint = make_checkpoint("pix2pix", tmp_path / "big.pt", model=dict(netG="unet_32", ngf=8))
    assert main(["export", str(checkpoint), str(tmp_path / "export"), "--format", "safetensors"]) == 0
    hub.add("someone/big", {p.name: p.read_bytes() for p in (tmp_path / "export").iterdir()})
    size_mb = (tmp_path / "export" / "model.safetensors").stat().st_size / 1e6
    (tmp_path / "models").mkdir()
    small = TranslationService(tmp_path / "models", tmp_path, device="cpu", max_download_mb=0)
    with pytest.raises(ServiceError, match=rf"someone/big: its files take {size_mb:,.1f} MB, over the limit of 0.0 MB "
                                           r"for a download \(--max-download-mb\)"):
        small.add_hub("someone/big")
    assert not [r for r in hub.requests if "/resolve/" in r]  # nothing was downloaded
    roomy = TranslationService(tmp_path / "models", tmp_path, device="cpu", max_download_mb=1 + round(size_mb))
    assert roomy.add_hub("someone/big").hub_repo == "someone/big"
