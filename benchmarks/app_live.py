"""The app's Live tab end to end: Chromium's fake camera streams into the page, each frame is
translated by the server and shown, and the page's own frames/s line is read.

    python benchmarks/app_live.py [--checkpoints checkpoints] [--seconds 20] [--side 256]

Needs Debian's chromium (the tests' browser) and playwright. The fake camera sends 1920x1440
frames; the app scales them to --side px (longer side) before translating.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from img2img.app.page import build_app  # noqa: E402
from img2img.app.translate_tabs import LIVE_SIDE  # noqa: E402

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream"]


def live_rate(url: str, seconds: float, side: int, profile: Path, screenshot: Path | None = None) -> str:
    """The Live tab's frames/s line after streaming for `seconds`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(profile), executable_path="/usr/bin/chromium",
                                                       headless=True, viewport={"width": 1280, "height": 900},
                                                       permissions=["camera"], args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("tab", name="Live").click()
            if side != LIVE_SIDE:
                page.locator("input[type=number]").last.fill(str(side))
                page.locator("input[type=number]").last.press("Enter")
            page.get_by_text("Click to Access Webcam").click()
            page.locator("#live-input button[aria-label='capture photo']").click()
            page.locator("#live-rate").get_by_text("frames/s translated").wait_for(timeout=60_000)
            page.wait_for_timeout(seconds * 1000)
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            return page.locator("#live-rate").inner_text()
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--side", type=int, default=LIVE_SIDE)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app(args.checkpoints, device="cpu")
    app.preload()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(live_rate(f"http://127.0.0.1:{port}/", args.seconds, args.side, Path(tmp) / "profile"))
    finally:
        app.close()


if __name__ == "__main__":
    main()
