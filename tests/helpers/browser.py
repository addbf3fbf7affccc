"""Debian's Chromium, driven by Playwright, and where screenshots go."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the browser test's screenshots go: IMG2IMG_SCREENSHOTS if set (to look at them), else a temporary folder."""
    folder = Path(os.environ.get("IMG2IMG_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_browser(p, tmp_path):
    # A fresh profile folder; never a downloaded browser.
    return p.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=chromium_path(), headless=True,
        viewport={"width": 1280, "height": 1300},
        args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])


def open_train_tab(p, tmp_path, url: str):
    """(the browser, a page on the app's Train tab)."""
    browser = open_browser(p, tmp_path)
    page = browser.new_page()
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    return browser, page
