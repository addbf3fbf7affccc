"""A UNSB model in the app: the Train tab offers the method for unpaired data, and the Image tab
translates in the number of steps the slider asks for (hidden for other models)."""
import numpy as np
import pytest
from helpers import chromium_path, launch, make_checkpoint, make_unpaired, open_train_tab, random_image, screenshot_dir

from img2img.service.training import TrainingService


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="no Chromium: install Debian's chromium package to run")
def test_browser_offers_unsb_for_training_and_translates_at_the_steps_chosen(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    make_unpaired(tmp_path / "data" / "horses", n_a=3, n_b=3)
    models = tmp_path / "models"
    models.mkdir()
    make_checkpoint("unsb", models / "bridge.pt", size=32, load_size=32)
    make_checkpoint("pix2pix", models / "plain.pt", model=dict(netG="unet_32", ngf=8), size=32, load_size=32)
    random_image(np.random.default_rng(0), 48, 40).save(tmp_path / "in.png")
    service = TrainingService(tmp_path / "data", tmp_path / "runs", models_dir=models)
    app, url = launch(models, tmp_path, training=service)
    shots = screenshot_dir(tmp_path)
    with playwright.sync_playwright() as p:
        browser, page = open_train_tab(p, tmp_path, url)
        try:
            page.locator("#train-data input").click()
            page.locator("#train-data input").fill("horses")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Enter")
            page.locator("#train-report").get_by_text("(unpaired)").first.wait_for(timeout=60_000)
            page.locator("#train-method input").click()
            page.locator("#train-method input").fill("unsb")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Enter")
            page.locator("#train-command").get_by_text("--model unsb").wait_for(timeout=30_000)
            assert page.locator(".error").count() == 0  # no red badge from the menus changing together
            page.screenshot(path=str(shots / "train_unsb.png"), full_page=True)

            page.get_by_role("tab", name="Image").click()
            model = page.get_by_role("combobox", name="Model")
            assert model.input_value().startswith("bridge")
            steps = page.locator("#steps input[type=number]")
            steps.wait_for(timeout=30_000)
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "in.png"))
            details = page.locator("#translation-details")
            for count in ("2", "5"):
                steps.fill(count)
                steps.press("Enter")
                page.get_by_role("button", name="Translate", exact=True).click()
                details.get_by_text(f"{count} steps").wait_for(timeout=60_000)
                assert "48×40 px whole" in details.inner_text()
            page.screenshot(path=str(shots / "translate_unsb_steps.png"), full_page=True)
            model.click()
            page.get_by_role("option", name="plain").click()
            page.locator("#steps").wait_for(state="hidden", timeout=30_000)
        finally:
            browser.close()
            app.close()
            service.runs.close()
