"""The Train tab on this CPU, as a user meets it: the time from uploading a zip of 200 maps pairs
to the first sample grid with the "quick look" preset, and the images/s of a run started from the
tab (the page open and polling) against the same command in a terminal, side by side. Saves the
screenshots of benchmarks/figures/app/.

    python benchmarks/app_train.py [--data ../shared/datasets/maps] [--pairs 200] [--steps 200] [--rounds 2]

The app runs as `python app.py --allow-training` in its own process, driven by Debian's Chromium.
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import chromium_path, free_port, open_browser, wait_for  # noqa: E402

FIGURES = ROOT / "benchmarks" / "figures" / "app"


def make_zip(data: Path, pairs: int, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as z:
        for split, n in (("train", pairs), ("val", 20)):
            for path in sorted((data / split).glob("*.jpg"), key=lambda p: int(p.stem))[:n]:
                z.write(path, f"maps{pairs}/{split}/{path.name}")
    return target


def images_per_s(run: Path) -> float:
    """Mean images/s of metrics.csv's rows, the first (start-up) row left out."""
    with open(run / "metrics.csv") as f:
        rows = [float(r["images_per_s"]) for r in csv.DictReader(f) if r.get("images_per_s")]
    return statistics.mean(rows[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "maps"))
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200, help="steps of each run of the side-by-side timing")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="app_train_"))
    upload = make_zip(Path(args.data), args.pairs, work / f"maps{args.pairs}.zip")
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", str(ROOT / "checkpoints"),
                               "--allow-training", "--data-root", str(work / "data"), "--runs", str(work / "runs"),
                               "--port", str(port)], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    FIGURES.mkdir(parents=True, exist_ok=True)
    try:
        wait_for("the app", lambda: _up(url), 120)
        client = Client(url, verbose=False)
        with sync_playwright() as p:
            browser = open_browser(p, work)
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("tab", name="Train").click()
            # Upload to the first sample grid, with the quick-look preset.
            started = time.perf_counter()
            page.locator("#train-upload input[type=file]").set_input_files(str(upload))
            page.locator("#train-report").get_by_text("A|B images side by side").wait_for(timeout=300_000)
            report_s = time.perf_counter() - started
            page.locator("#train-samples img").first.wait_for(timeout=60_000)
            page.screenshot(path=str(FIGURES / "data_report.png"), full_page=False)
            page.locator("#train-command").get_by_text("--max-steps").wait_for(timeout=60_000)
            page.locator("#train-start").click()
            page.locator("#train-sample img").wait_for(timeout=900_000)
            first_grid_s = time.perf_counter() - started
            run = client.predict(api_name="/train_runs")[0]["run"]
            page.locator("#train-status").scroll_into_view_if_needed()
            page.locator("#train-losses").get_by_text("G_L1").wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(FIGURES / "run_in_progress.png"), full_page=False)
            poll = client.predict(run, api_name="/train_poll")
            print(f"upload of {args.pairs} pairs ({upload.stat().st_size / 1e6:.1f} MB) to the data report: "
                  f"{report_s:.1f} s; to the first sample grid (quick look, step {poll['step']} of "
                  f"{poll['total_steps']}): {first_grid_s:.1f} s", flush=True)
            client.predict(run, api_name="/train_stop")
            wait_for("the stop", lambda: client.predict(run, api_name="/train_poll")["state"] == "stopped", 120, 0.5)
            # The translator with the new model.
            page.locator("#train-use").click()
            page.wait_for_function("document.querySelector('#model-card').innerText.includes('training run')",
                                   timeout=60_000)
            page.get_by_role("tab", name="Image").click()
            val = sorted((Path(args.data) / "val").glob("*.jpg"))[0]
            from PIL import Image

            aerial = Image.open(val)
            aerial.crop((0, 0, aerial.width // 2, aerial.height)).save(work / "aerial.png")
            page.locator("input[type=file]").first.set_input_files(str(work / "aerial.png"))
            page.get_by_role("button", name="Translate", exact=True).click()
            page.locator("#translation-details").get_by_text("px whole").wait_for(timeout=120_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(FIGURES / "translator_with_the_new_model.png"), full_page=False)
            # Images/s: a run from the tab (this page open on it, polling) against the same command
            # in a terminal, alternately.
            tab, terminal = [], []
            for round_ in range(args.rounds):
                started_run = client.predict(f"uploads/maps{args.pairs}", "pix2pix", "quick", 0, args.steps, "steps",
                                             {"train.sample_every": str(args.steps // 2)}, api_name="/train_start")
                name = started_run["run"]
                page.reload()
                page.get_by_role("tab", name="Train").click()
                wait_for("the run", lambda: client.predict(name, api_name="/train_poll")["state"] == "finished", 1800, 2)
                tab.append(images_per_s(work / "runs" / name))
                command = shlex.split(started_run["command"])
                out = command.index("--out")
                command[out + 1] = str(work / f"terminal_{round_}")
                subprocess.run([sys.executable, "-m", "img2img", *command[1:]], check=True, cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                terminal.append(images_per_s(work / f"terminal_{round_}"))
                print(f"round {round_ + 1}: tab {tab[-1]:.3f} images/s, terminal {terminal[-1]:.3f} images/s",
                      flush=True)
            browser.close()
        ratio = statistics.mean(tab) / statistics.mean(terminal)
        print(json.dumps({"pairs": args.pairs, "upload_to_report_s": round(report_s, 1),
                          "upload_to_first_grid_s": round(first_grid_s, 1),
                          "tab_images_per_s": [round(t, 3) for t in tab],
                          "terminal_images_per_s": [round(t, 3) for t in terminal], "tab_over_terminal": round(ratio, 3),
                          "command": started_run["command"]}))
    finally:
        server.terminate()
        server.wait(30)


def _up(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=2)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    if chromium_path() is None:
        raise SystemExit("needs Debian's chromium")
    main()
