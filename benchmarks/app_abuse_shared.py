"""The app on a shared server, tried as a hostile user who has a login: each row of issue 61
against `python app.py` in its own process, with its answer and what it cost the server.

    python benchmarks/app_abuse_shared.py [--checkpoints checkpoints]

The app runs with two logins (ann, bob), the Train tab on (`--allow-training`), its Hub set to
a Hub of this script's own on 127.0.0.1 (HF_ENDPOINT), and its caches in a temporary folder.
Requests go over HTTP as a visitor's would (gradio_client, httpx). Memory is the app's peak
resident size above its level before the request (sampled every 2 ms from /proc), CPU its user +
system seconds from /proc; after a cancel, how soon the app was idle (a half-second under 0.15
of a core) and its CPU use over the next 5 s. Runs are
processes of their own: their figures are read from their run folders. Hub models are added
through the app's service in a process of their own (the page's Hub button has no named API).
Takes about 5 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import HubServer, free_port, make_checkpoint, make_paired, make_video, png_header_only  # noqa: E402

ANN, BOB = ("ann", "secret-a"), ("bob", "secret-b")
TINY = {"model.netG": "unet_32", "model.ngf": "8", "model.ndf": "8", "data.num_workers": "0"}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1][:220] if text else type(error).__name__


class Measured:
    """The app's extra peak memory, CPU seconds and wall seconds over a `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> "Measured":
        self.before_mb, self.before_cpu, self.start = rss_mb(self.pid), cpu_s(self.pid), time.monotonic()
        self.peak, self.done = self.before_mb, threading.Event()

        def sample() -> None:
            while not self.done.wait(0.002):
                self.peak = max(self.peak, rss_mb(self.pid))

        self.sampler = threading.Thread(target=sample)
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.sampler.join()
        self.extra_mb, self.cpu = self.peak - self.before_mb, cpu_s(self.pid) - self.before_cpu
        self.seconds = time.monotonic() - self.start


class Report:
    def __init__(self) -> None:
        print("| item | what was sent | answer | extra memory | CPU | seconds | more |")
        print("|---|---|---|---|---|---|---|")

    def row(self, item: str, what: str, answer: str, m: Measured | None = None, more: str = "") -> None:
        figures = (f"{m.extra_mb:.0f} MB", f"{m.cpu:.2f} s", f"{m.seconds:.1f}") if m else ("", "", "")
        print(f"| {item} | {what} | {answer} | {' | '.join(figures)} | {more} |", flush=True)


def ask(client, *args, api_name: str) -> str:
    try:
        result = client.predict(*args, api_name=api_name)
        return "ACCEPTED: " + json.dumps(result)[:120]
    except Exception as e:
        return first_line(e)


def after_cancel(client, pid: int, args: tuple, api_name: str, busy_s: float = 3.0) -> tuple[str, Measured, str]:
    """Submit, cancel after `busy_s` of work; then how long until the app is idle (a half-second
    under 0.15 of a core), and its CPU use in the 5 s after the cancel."""
    with Measured(pid) as m:
        job = client.submit(*args, api_name=api_name)
        time.sleep(busy_s)
        state = "still running" if not job.done() else "already done"
        job.cancel()
        cancelled, cancelled_cpu, idle_after = time.monotonic(), cpu_s(pid), None
        while time.monotonic() - cancelled < 5:
            before, start = cpu_s(pid), time.monotonic()
            time.sleep(0.5)
            if idle_after is None and (cpu_s(pid) - before) / (time.monotonic() - start) < 0.15:
                idle_after = start - cancelled
        cores = (cpu_s(pid) - cancelled_cpu) / (time.monotonic() - cancelled)
    idle = f"idle {idle_after:.1f} s after the cancel" if idle_after is not None else "NOT IDLE within 5 s"
    return f"cancelled after {busy_s:.0f} s ({state})", m, f"{idle}; {cores:.2f} cores over those 5 s"


def start_app(tmp: Path, checkpoints: str, env: dict, *flags: str) -> tuple[subprocess.Popen, str, Path]:
    port, log = free_port(), tmp / "app.log"
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", checkpoints, "--port", str(port),
                               "--device", "cpu", "--auth", ":".join(ANN), "--auth", ":".join(BOB), *flags],
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    return server, f"http://127.0.0.1:{port}/", log


def connect(url: str, auth, server: subprocess.Popen, seconds: float = 180):
    from gradio_client import Client

    deadline = time.monotonic() + seconds
    while True:
        try:
            return Client(url, auth=auth, verbose=False)
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the app did not start") from None
            time.sleep(1)


def changing_stream(folder: Path) -> Path:
    """An MPEG-TS stream of 64x48 frames, then 4096x2304 ones: its header says 64x48."""
    small = make_video(folder / "small.ts", frames=12, size=(64, 48), audio=False)
    large = make_video(folder / "large.ts", frames=2, size=(4096, 2304), audio=False)
    joined = folder / "changing.ts"
    joined.write_bytes(small.read_bytes() + large.read_bytes())
    return joined


def zip_of(folder: Path, name: str, members: int) -> Path:
    tiny = png_header_only(folder / "tiny.png", 1, 1).read_bytes()
    with zipfile.ZipFile(folder / name, "w") as archive:
        for i in range(members):
            archive.writestr(f"many/train/{i:06d}.png", tiny)
    return folder / name


def hub_models(tmp: Path, hub: HubServer) -> None:
    """An ngf-8 model whose config.json asks for ngf 320, and an honest ngf-16 one (13.6 MB)."""
    from img2img.cli import main as cli

    for name, ngf in (("mallory/ngf320", 8), ("someone/big", 16)):
        checkpoint = make_checkpoint("pix2pix", tmp / f"{ngf}.pt", model=dict(netG="unet_256", ngf=ngf))
        out = tmp / f"export_{ngf}"
        cli(["export", str(checkpoint), str(out), "--format", "safetensors"])
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        if name == "mallory/ngf320":
            config = json.loads(files["config.json"])
            config["config"]["model"]["ngf"] = 320
            files["config.json"] = json.dumps(config).encode()
        hub.add(name, files)


HUB_ADD = """
import resource, sys, time
from pathlib import Path
from img2img.service.translation import TranslationService
service = TranslationService(Path(sys.argv[1]), Path(sys.argv[2]), device="cpu", max_download_mb=int(sys.argv[4]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    info = service.add_hub(sys.argv[3])
    service.load(service.shelf.key(info), "AtoB")
    answer = "ACCEPTED and loaded"
except Exception as e:
    answer = str(e)
print(f"{answer}\\t{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024:.0f}\\t{time.monotonic() - start:.1f}")
"""


def poison_onnx_cache(checkpoint: Path) -> Path:
    """The bundled model's ONNX export in the cache, negated, with its sha256 record rewritten."""
    import onnx

    from img2img.files import atomic_write_text
    from img2img.persist.checkpoint import checkpoint_config, load_checkpoint, load_generators
    from img2img.translate.onnx_graph import cached_export, file_sha256

    state = load_checkpoint(checkpoint)
    path = cached_export(checkpoint, load_generators(state)["AtoB"], checkpoint_config(state), "AtoB", "image")
    model = onnx.load(str(path))
    output = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{o}_inner" if o == output else o for o in node.output]
    model.graph.node.append(onnx.helper.make_node("Neg", [f"{output}_inner"], [output]))
    onnx.save(model, str(path))
    atomic_write_text(path.with_name(path.name + ".sha256"), file_sha256(path) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--log", help="keep a copy of the app's log here")
    args = parser.parse_args(argv)
    import httpx
    import nibabel
    import numpy as np
    from gradio_client import handle_file

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        hub = HubServer()
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp / "hf"), "IMG2IMG_CACHE": str(tmp / "cache"),
               "GRADIO_TEMP_DIR": str(tmp / "gradio"), "PYTHONUNBUFFERED": "1"}
        os.environ.update({k: env[k] for k in ("HF_ENDPOINT", "HF_HOME", "IMG2IMG_CACHE")})
        bundled = next(Path(args.checkpoints).rglob("*.pt"))
        poisoned = poison_onnx_cache(bundled)
        make_paired(tmp / "data" / "pairs", n_train=8, n_val=2)
        (tmp / "runs").mkdir()
        server, url, log = start_app(
            tmp, args.checkpoints, env, "--allow-training", "--data-root", str(tmp / "data"), "--runs",
            str(tmp / "runs"), "--time-limit", "60", "--max-runs", "1", "--max-run-process-mb", "1600",
            "--max-runs-disk", "20000")
        pid = server.pid
        try:
            ann = connect(url, ANN, server)
            bob = connect(url, BOB, server)
            time.sleep(20)  # the default model is loaded, its cached export checked, while the server starts
            report = Report()

            # 12. The poisoned cache, met by the app's preload.
            caught = "disagrees with its checkpoint's network" in log.read_text()
            report.row("12 caches", "the bundled model's cached ONNX graph negated, its sha256 record rewritten",
                       "caught and exported again" if caught else "SERVED", more=f"graph {poisoned.name[:12]}...")

            # 7. Nothing unauthenticated but the login.
            page = httpx.get(url).text
            report.row("7 login page", "GET / before a login",
                       "the API description is null" if "window.gradio_api_info = null" in page else "API DESCRIBED",
                       more=f"/train_start named on the page: {'/train_start' in page or 'train_start' in page}")

            # 1. Work that stops: a volume and a video, cancelled.
            volume = np.random.default_rng(0).integers(0, 255, (256, 256, 2048)).astype(np.uint8)
            nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp / "long.nii.gz")
            answer, m, cores = after_cancel(ann, pid, (handle_file(str(tmp / "long.nii.gz")),), "/translate_file")
            report.row("1 stops", "a 256x256x2048 NIfTI volume", answer, m, cores)
            clip = make_video(tmp / "long.mp4", frames=600, size=(640, 480), audio=False)
            answer, m, cores = after_cancel(ann, pid, (handle_file(str(clip)),), "/translate_video")
            report.row("1 stops", "a 640x480 video of 600 frames", answer, m, cores)

            # 2. A stream checked as it is read.
            stream = changing_stream(tmp)
            with Measured(pid) as m:
                answer = ask(ann, handle_file(str(stream)), api_name="/translate_video")
            report.row("2 streams", "an MPEG-TS of 64x48 frames, then 4096x2304 ones", answer, m)

            # 8. Paths: only this server's uploads; settings inside the data root.
            for what, ref in (("/etc/hostname", "/etc/hostname"), ("a path that does not exist", "/no/such.zip")):
                with Measured(pid) as m:
                    answer = ask(ann, {"path": ref}, api_name="/train_upload")
                report.row("8 paths", f"/train_upload of {what}, without Gradio's metadata", answer, m)
            with Measured(pid) as m:
                answer = ask(ann, "pairs", "pix2pix", "custom", 32, 10, "steps", {**TINY, "data.val_dir": "/etc"},
                             api_name="/train_start")
            report.row("8 paths", "data.val_dir /etc", answer, m)

            # 9. Zips: bounded before unpacking, and stopped when cancelled.
            big = zip_of(tmp, "members.zip", 100_001)
            with Measured(pid) as m:
                answer = ask(ann, handle_file(str(big)), api_name="/train_upload")
            report.row("9 zips", f"a zip of 100,001 members ({big.stat().st_size / 1e6:.1f} MB)", answer, m)
            many = zip_of(tmp, "many.zip", 60_000)
            answer, m, cores = after_cancel(ann, pid, (handle_file(str(many)),), "/train_upload", busy_s=4)
            report.row("9 zips", "a zip of 60,000 members, unpacking", answer, m, cores)

            # 3 and 10. Settings as values, bounded.
            for setting, value in (("data.num_workers", "500"), ("model.ngf", "100000"), ("data.batch_size", "1000000"),
                                   ("data.domain_a", "x\0y")):
                with Measured(pid) as m:
                    answer = ask(ann, "pairs", "pix2pix", "custom", 32, 10, "steps", {**TINY, setting: value},
                                 api_name="/train_start")
                report.row("10 values" if "\0" in value else "3 bounds", f"{setting} {value!r}", answer, m)
            with Measured(pid) as m:
                answer = ask(ann, "pairs", "pix2pix", "custom", 1024, 10, "steps",
                             {"model.ngf": "256", "data.batch_size": "64"}, api_name="/train_start")
            report.row("3 bounds", "ngf 256, batch 64 at 1024 px", answer, m)

            # 3. The process's memory cap.
            answer = ask(ann, "pairs", "pix2pix", "custom", 32, 10, "steps",
                         {**TINY, "model.ngf": "128", "train.snapshot_every": "0"}, api_name="/train_start")
            run = answer.split('"run": "')[1].split('"')[0] if '"run"' in answer else None
            deadline, state = time.monotonic() + 180, {}
            while run and time.monotonic() < deadline:
                state = ann.predict(run, api_name="/train_poll")
                if state["state"] not in ("queued", "running"):
                    break
                time.sleep(1)
            report.row("3 memory cap", "a run of ngf 128 (about 2 GB) under --max-run-process-mb 1600",
                       f"{state.get('state')}: {state.get('error')}" if run else answer)

            # 4 and 5. The queue, per login; owners.
            started = []
            for i in range(8):
                answer = ask(ann, "pairs", "pix2pix", "custom", 32, 100_000, "steps", TINY, api_name="/train_start")
                if not answer.startswith("ACCEPTED"):
                    break
                started.append(answer.split('"run": "')[1].split('"')[0])
            report.row("4 queue", "ann starts runs until refused", answer, more=f"{len(started)} accepted")
            with Measured(pid) as m:
                answer = ask(bob, started[0], api_name="/train_stop")
            report.row("5 owners", "bob stops ann's running run", answer, m)
            answer = ask(bob, started[-1], api_name="/train_delete")
            report.row("5 owners", "bob deletes ann's queued run", answer)

            # 3. The disk budget, reached while the first run trains.
            deadline = time.monotonic() + 120
            while ann.predict(started[0], api_name="/train_poll")["step"] < 1:
                assert time.monotonic() < deadline, "the run did not start"
                time.sleep(1)
            (tmp / "runs" / "filler").mkdir()
            with open(tmp / "runs" / "filler" / "big.bin", "wb") as f:
                f.truncate(20_000 * 10**6)  # sparse: its size counts, and no disk is spent
            filled = time.monotonic()
            while (state := ann.predict(started[0], api_name="/train_poll"))["state"] not in ("stopped", "failed"):
                assert time.monotonic() - filled < 120, state
                time.sleep(0.5)
            report.row("3 disk", "the runs folder reaches --max-runs-disk 20000 while a run trains",
                       f"{state['state']} after {time.monotonic() - filled:.1f} s, checkpoint {state['checkpoint']}: "
                       f"{state['error']}")
            shutil.rmtree(tmp / "runs" / "filler")
            for run in started[1:-1]:
                ask(ann, run, api_name="/train_stop")

            # 4. Cheap to watch: 300 finished runs.
            for i in range(300):
                shutil.copytree(tmp / "runs" / started[0], tmp / "runs" / f"copy{i:03d}")
            with Measured(pid) as m:
                runs = ann.predict(api_name="/train_runs")
            before = cpu_s(pid)
            time.sleep(10)
            report.row("4 watching", f"/train_runs with {len(runs)} runs listed", f"{len(runs)} runs", m,
                       f"idle: {(cpu_s(pid) - before) / 10:.3f} cores over 10 s")

            # 11. Hub models, through the app's service in a process of its own.
            hub_models(tmp, hub)
            for what, reference, limit in (("config.json asking for ngf 320 beside ngf-8 weights", "mallory/ngf320", 1024),
                                           ("an honest 13.6 MB model under --max-download-mb 10", "someone/big", 10)):
                out = subprocess.run([sys.executable, "-c", HUB_ADD, str(tmp / "no_models"), str(tmp / "work"),
                                      reference, str(limit)], capture_output=True, text=True, env=env)
                answer, extra, seconds = (out.stdout.strip().split("\t") + ["", "", ""])[:3]
                downloads = [r for r in hub.requests if "/resolve/" in r and reference in r]
                report.row("11 Hub", what, answer[:220] or first_line(Exception(out.stderr)),
                           more=f"+{extra} MB peak, {seconds} s; {len(downloads)} file requests")

            # 6. Logins, last: their penalties would slow the rows above.
            start = time.monotonic()
            for _ in range(12):
                httpx.post(url + "login", data={"username": "ann", "password": "wrong"}, timeout=120)
            wrong = time.monotonic() - start
            start = time.monotonic()
            right = httpx.post(url + "login", data={"username": "ann", "password": ANN[1]}, timeout=120)
            report.row("6 logins", "12 wrong passwords for ann, then the right one", f"right one: HTTP {right.status_code}",
                       more=f"12 wrong: {wrong:.1f} s; the right one: {time.monotonic() - start:.1f} s")

            text = log.read_text()
            if args.log:
                shutil.copy(log, args.log)
            refused = sum(line.startswith("refused: ") for line in text.splitlines())
            report.row("7 log", "the server's log after all of the above", f"{refused} refusals in one line each",
                       more=f"{text.count('Traceback')} tracebacks")
        finally:
            server.terminate()
            server.wait(timeout=60)
            subprocess.run(["pkill", "-f", str(tmp / "runs")], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
