"""The app against hostile inputs: each file small on disk and huge when decoded, sent over HTTP
to the running app, with the app's extra memory and CPU time for each request.

    python benchmarks/app_abuse.py [--checkpoints checkpoints] [--app app.py] [--part files|shared|all]

`--part shared` (in `all`, the default) goes on to benchmarks/app_abuse_shared.py: the app on a
shared server, tried by a user with a login (issue 61), one row per item.

Starts `python app.py` in its own process on 127.0.0.1 with the bundled model, waits until the
model is loaded, then sends each file as a visitor would (gradio_client) to the endpoint a
visitor would use. For each request it prints the answer's first line, the app's peak resident
memory above its level before the request (sampled every 2 ms from /proc) and the app's CPU
seconds (user + system, from /proc). The target (issue 49): every file refused in one line, for
under 200 MB of extra memory and under 2 CPU-s.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from app_abuse_shared import cpu_s, rss_mb  # noqa: E402
from helpers import free_port, make_video, nifti_header_only, npy_header_only, png_header_only, tiff_planes_header  # noqa: E402


def hostile_files(folder: Path) -> list[tuple[str, Path, str]]:
    """(what, file, endpoint)."""
    eps = folder / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    return [
        ("PNG declaring 9000x9000", png_header_only(folder / "wide.png", 9000, 9000), "/translate"),
        ("TIFF of 32 float planes of 4000x4000", tiff_planes_header(folder / "planes.tif", 32, 4000, 4000),
         "/translate_file"),
        ("TIFF of 100 planes", tiff_planes_header(folder / "bands.tif", 100, 64, 64), "/translate_file"),
        (".npy declaring 30000x30000x3", npy_header_only(folder / "huge.npy", (30000, 30000, 3)), "/translate_file"),
        (".nii.gz declaring 2048^3 voxels", nifti_header_only(folder / "cube.nii.gz", (2048, 2048, 2048)),
         "/translate_file"),
        ("NIfTI of 32,767 one-pixel slices", nifti_header_only(folder / "slices.nii.gz", (1, 1, 32767)),
         "/translate_file"),
        ("EPS named .png", eps, "/translate"),
        ("video of 4096x2304 frames", make_video(folder / "wide.mp4", frames=2, size=(4096, 2304), audio=False),
         "/translate_video"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--app", default=str(ROOT / "app.py"))
    parser.add_argument("--part", choices=("files", "shared", "all"), default="all")
    args = parser.parse_args(argv)
    if args.part != "shared":
        hostile_files_table(args)
    if args.part != "files":
        from app_abuse_shared import main as shared

        print()
        shared(["--checkpoints", args.checkpoints])
    return 0


def hostile_files_table(args) -> None:
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = hostile_files(folder)
        port = free_port()
        server = subprocess.Popen([sys.executable, args.app, "--checkpoints", args.checkpoints, "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client = Client(url, verbose=False)
                    break
                except Exception:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the app did not start") from None
                    time.sleep(0.5)
            time.sleep(15)  # the default model is loaded (and exported to ONNX) while the server starts
            print("| file | size on disk | answer | extra memory | CPU |")
            print("|---|---|---|---|---|")
            worst_mb = worst_cpu = 0.0
            for what, path, endpoint in files:
                before_mb, before_cpu = rss_mb(server.pid), cpu_s(server.pid)
                peak, done = [before_mb], threading.Event()

                def sample() -> None:
                    while not done.wait(0.002):
                        peak[0] = max(peak[0], rss_mb(server.pid))

                sampler = threading.Thread(target=sample)
                sampler.start()
                try:
                    client.predict(handle_file(str(path)), api_name=endpoint)
                    answer = "ACCEPTED"
                except Exception as e:
                    answer = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                finally:
                    done.set()
                    sampler.join()
                extra, cpu = peak[0] - before_mb, cpu_s(server.pid) - before_cpu
                worst_mb, worst_cpu = max(worst_mb, extra), max(worst_cpu, cpu)
                print(f"| {what} | {path.stat().st_size:,} B | {answer} | {extra:.0f} MB | {cpu:.2f} s |")
            print(f"\nworst: {worst_mb:.0f} MB of extra memory, {worst_cpu:.2f} CPU-s (target: under 200 MB and 2 s)")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
