"""The app under concurrent load: throughput, latency and failures of its named /translate endpoint.

    python benchmarks/app_load.py [--clients 1 4 12] [--requests 6] [--checkpoints checkpoints] [--app app.py]
        [--precision auto|fp32|int8] [--image PHOTO]

Starts the app in its own process on 127.0.0.1 (`python app.py`, as `make demo` does, with the
bundled model, or the first model of --checkpoints, at --precision), so that the clients do not
share its interpreter, then for
each client count runs that many gradio_client users at once, each translating the same aerial
photo --requests times (as several users of a demo upload its example), and checks every
response: a whole PNG of the input's size, equal to the translation of that photo. Prints
requests/s, median and 90th-percentile latency, and failures (after one request that lets the app
load its model); and, for one request, the time in the translator alone.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from img2img.translate.catalog import discover_checkpoints  # noqa: E402
from img2img.translate.precision import PRECISIONS  # noqa: E402
from img2img.translate.translator import Translator  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app exited with code {server.returncode}")
        try:
            if httpx.get(url + "config", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the app did not answer at {url} within {timeout:.0f} s")


def run_clients(url: str, image: Path, expected: np.ndarray, clients: int, requests: int) -> tuple[list[float], list[str]]:
    from gradio_client import Client, handle_file

    def user(_: int) -> tuple[list[float], list[str]]:
        client = Client(url, verbose=False)
        latencies, failures = [], []
        for _ in range(requests):
            start = time.perf_counter()
            try:
                output = client.predict(handle_file(str(image)), api_name="/translate")[0]
                result = np.asarray(Image.open(output).convert("RGB"), int)
                if result.shape != expected.shape or np.abs(result - expected).max() > 1:
                    failures.append("wrong result")
            except Exception as e:  # every failure is counted, whatever its kind
                failures.append(f"{type(e).__name__}: {str(e)[:160]}")
            latencies.append(time.perf_counter() - start)
        return latencies, failures

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(user, range(clients)))
    return [t for lat, _ in results for t in lat], [f for _, fails in results for f in fails]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 12])
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--app", default=str(ROOT / "app.py"), help="the app to start (e.g. an older checkout's)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="the app's --precision")
    parser.add_argument("--image", help="the photo each request sends (default: the bundled model card's first sample)")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, args.app, "--checkpoints", args.checkpoints, "--port",
                               str(port), "--device", "cpu", "--precision", args.precision],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        measure(args, server, f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure(args, server: subprocess.Popen, url: str) -> None:
    wait_until_up(url, server)
    model = discover_checkpoints(args.checkpoints)[0][0]  # the app's default model
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "aerial.png"
        if args.image:
            Image.open(args.image).convert("RGB").save(image)
        else:
            sample = sorted((ROOT / "checkpoints" / "maps_aerial2map" / "samples").glob("*.jpg"))[0]
            with Image.open(sample) as triplet:  # the card's sample: input | output | target
                triplet.crop((0, 0, triplet.width // 3, triplet.height)).save(image)
        translator = Translator.from_checkpoint(model.path, device="cpu", precision=args.precision)
        expected = np.asarray(translator.translate(image), int)
        start = time.perf_counter()
        for _ in range(5):
            translator.translate(image)
        network = (time.perf_counter() - start) / 5
        print(f"{model.path}, image {Image.open(image).size[0]}x{Image.open(image).size[1]}; the translator alone: "
              f"{network:.3f} s a request ({translator.engine}, {translator.describe_precision('AtoB')})")
        # One request first: the app loads its model (and under int8 quantises it) at first use.
        warm_up = run_clients(url, image, expected, 1, 1)[1]
        if warm_up:
            raise SystemExit(f"the first request failed: {warm_up[0]}")
        for clients in args.clients:
            start = time.perf_counter()
            latencies, failures = run_clients(url, image, expected, clients, args.requests)
            wall = time.perf_counter() - start
            q90 = statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else latencies[0]
            print(f"{clients:>2} clients x {args.requests}: {len(latencies) / wall:.2f} requests/s, median "
                  f"{statistics.median(latencies):.2f} s, 90th percentile {q90:.2f} s, failed {len(failures)} "
                  f"of {len(latencies)}")
            for failure in sorted(set(failures)):
                print(f"   {failures.count(failure)}x {failure}")


if __name__ == "__main__":
    main()
