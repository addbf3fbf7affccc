"""What the tests share: tiny generated data, tiny methods and run flags, a local HTTP server,
the app launched on a free port, and checks of resumed runs. Test files import from here and
never from each other."""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import struct
import sys
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from torch import nn

from img2img.cli import main
from img2img.config import SpeedConfig, TrainConfig
from img2img.methods import METHODS, TrainingMethod, build_method, new_run_config
from img2img.persist.checkpoint import generator_only_checkpoint, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BUNDLED = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"
CHECKPOINT_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "format_2b02544"


def tiny_method(method: str, device: str = "cpu", **settings) -> TrainingMethod:
    """The one builder of small methods for tests: seeded, a 32-px U-Net (pix2pix, colourisation)
    or a 6-block ResNet with 8 filters, CUT's heads at 32 patches of width 16. `settings` are
    fields of SpeedConfig, ModelConfig or the method's Config, each put where it belongs."""
    torch.manual_seed(0)
    speed = {k: settings.pop(k) for k in list(settings) if k in SpeedConfig.__dataclass_fields__}
    cfg = new_run_config(method, train=TrainConfig(device=device, speed=SpeedConfig(**speed)))
    cfg.model.netG = "unet_32" if cfg.model.netG.startswith("unet") else "resnet_6blocks"
    cfg.model.ngf = cfg.model.ndf = 8
    if method in ("cut", "fastcut"):
        cfg.method_config.num_patches, cfg.method_config.nce_dim = 32, 16
    for name, value in settings.items():
        setattr(cfg.model if hasattr(cfg.model, name) else cfg.method_config, name, value)
    return build_method(cfg, torch.device(device))


def random_image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth random colour blobs (learnable, unlike white noise)."""
    small = rng.integers(0, 256, size=(max(h // 8, 1), max(w // 8, 1), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


def make_paired(root: Path, n_train: int = 4, n_val: int = 2, size: int = 32, seed: int = 0) -> Path:
    """pix2pix layout: root/{train,val}/*.png, A|B side by side (B is A colour-inverted)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.asarray(random_image(rng, size, size))
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i}.png")
    return root


def make_unpaired(root: Path, n_a: int = 3, n_b: int = 4, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, n in (("trainA", n_a), ("trainB", n_b), ("testA", 2), ("testB", 2)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            random_image(rng, size, size).save(root / name / f"{name}_{i}.png")
    return root


TINY_PIX2PIX = ["--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--size", "32", "--load-size", "36",
                "--num-workers", "0", "--log-every", "1", "--device", "cpu"]


TINY_CYCLEGAN = ["--model", "cyclegan", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32",
                 "--load-size", "36", "--num-workers", "0", "--log-every", "1", "--device", "cpu"]


TINY_CUT = ["--model", "cut", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--size", "32",
            "--load-size", "36", "--num-workers", "0", "--log-every", "1", "--device", "cpu", "--num-patches", "64"]


def compare_states(a, b, path=""):
    """Every tensor bitwise equal; returns the number of tensors compared."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return sum(compare_states(a[k], b[k], f"{path}/{k}") for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        return sum(compare_states(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
        return 1
    assert a == b, path
    return 0


def assert_resume_is_bitwise(flags: list[str], tmp_path, stop: int, end: int, tensors: int = 10) -> dict:
    """Trains straight to step `end`, and to `stop` then resumed to `end`; the two checkpoints
    must hold bitwise-equal state (more than `tensors` tensors). Returns the resumed one."""
    main(["train", *flags, "--out", str(tmp_path / "straight"), "--max-steps", str(end)])
    main(["train", *flags, "--out", str(tmp_path / "resumed"), "--max-steps", str(stop)])
    main(["train", "--resume", "auto", "--out", str(tmp_path / "resumed"), "--max-steps", str(end)])
    straight = load_checkpoint(tmp_path / "straight/checkpoints/latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed/checkpoints/latest.pt")
    for state in (straight, resumed):
        del state["config"]["train"]["out"], state["config"]["train"]["max_steps"]
    assert compare_states(straight, resumed) > tensors
    return resumed


class Server:
    """Serves `files` with HTTP Range support; `cut_next` sends only half of the next response."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_next = False
        self.chunk_delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_next:
                    server.cut_next = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                for start in range(0, len(body), 1 << 16):  # 64 KB at a time, `chunk_delay` s apart
                    self.wfile.write(body[start:start + (1 << 16)])
                    self.wfile.flush()
                    time.sleep(server.chunk_delay)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


class HubServer:
    """The Hugging Face Hub's API for model repos, on 127.0.0.1. Downloads: the calls
    `snapshot_download` makes (repo info at a revision, the recursive tree, HEAD and GET of each
    file at its commit), answered with exactly what was stored, and the Hub's error codes for
    unknown repos and revisions. Uploads: the calls `create_repo`, `create_branch` and
    `upload_folder` make (repo creation, 409 when it exists; preupload, answering "regular" for
    every file; README metadata validation; the NDJSON commit, stored as a new commit on its
    branch). `add(repo, files)` stores a commit directly."""

    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> files
        self.refs: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.private: dict[str, bool] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def do_POST(self):
                import base64
                import json
                from urllib.parse import unquote, urlparse

                path = unquote(urlparse(self.path).path)
                server.requests.append(f"POST {path}")
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = path.strip("/").split("/")
                if parts == ["api", "repos", "create"]:
                    payload = json.loads(raw)
                    repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                    if repo in server.repos:
                        return self.reply(409, {"error": "You already created this model repo", "url": f"{server.url}/{repo}"})
                    server.repos[repo], server.refs[repo] = {}, {}
                    server.private[repo] = bool(payload.get("private"))
                    return self.reply(200, {"url": f"{server.url}/{repo}"})
                if parts == ["api", "validate-yaml"]:
                    return self.reply(200, {"warnings": [], "errors": []})
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    repo, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                    if repo not in server.repos:
                        return self.error(repo, revision)
                    if action == "preupload":
                        files = json.loads(raw)["files"]
                        return self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                          for f in files]})
                    if action == "branch":
                        if revision in server.refs[repo]:
                            return self.reply(409, {"error": "Reference already exists"})
                        server.refs[repo][revision] = server.refs[repo].get("main") or server.add(repo, {})
                        return self.reply(200, {})
                    if action == "commit":
                        items = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
                        parent = server.refs[repo].get(revision)
                        files = dict(server.repos[repo][parent]) if parent else {}
                        for item in items:
                            if item["key"] == "file":
                                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        commit = server.add(repo, files, branch=revision)
                        return self.reply(200, {"commitUrl": f"{server.url}/{repo}/commit/{commit}", "commitOid": commit})
                self.send_error(404)

            def reply(self, status: int, payload):
                import json

                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def answer(self, body: bool):
                import json
                from urllib.parse import unquote, urlparse

                path = unquote(urlparse(self.path).path)
                server.requests.append(f"{self.command} {path}")
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo, kind, revision = "/".join(parts[2:4]), parts[4], parts[5]
                    commit = server.resolve(repo, revision)
                    if commit is None:
                        return self.error(repo, revision)
                    files = server.repos[repo][commit]
                    if kind == "revision":
                        info = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                                "siblings": [{"rfilename": name} for name in files]}
                    else:
                        info = [{"type": "file", "path": name, "size": len(data), "oid": server.oid(data)}
                                for name, data in files.items()]
                    return self.send(json.dumps(info).encode(), "application/json", body, commit)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    commit = server.resolve(repo, revision)
                    if commit is None or name not in server.repos[repo][commit]:
                        return self.error(repo, revision, entry=commit is not None)
                    data = server.repos[repo][commit][name]
                    return self.send(data, "application/octet-stream", body, commit, etag=server.oid(data))
                self.send_error(404)

            def send(self, data: bytes, kind: str, body: bool, commit: str, etag: str | None = None):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Repo-Commit", commit)
                if etag:
                    self.send_header("ETag", f'"{etag}"')
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def error(self, repo: str, revision: str, entry: bool = False):
                code = "EntryNotFound" if entry else ("RevisionNotFound" if repo in server.repos else "RepoNotFound")
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", f"{code}: {repo}@{revision}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    @staticmethod
    def oid(data: bytes) -> str:
        import hashlib

        return hashlib.sha1(data).hexdigest()

    def add(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        import hashlib

        commit = hashlib.sha1(repo.encode() + b"".join(sorted(self.oid(d).encode() for d in files.values()))
                              + str(len(self.repos.get(repo, {}))).encode()).hexdigest()
        self.repos.setdefault(repo, {})[commit] = dict(files)
        self.refs.setdefault(repo, {})[branch] = commit
        return commit

    def resolve(self, repo: str, revision: str) -> str | None:
        if repo not in self.repos:
            return None
        return self.refs[repo].get(revision) or (revision if revision in self.repos[repo] else None)


class CanonicalResnetBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x):
        return x + self.conv_block(x)


def canonical_resnet(n_blocks=9, ngf=64):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for c in (ngf, ngf * 2):
        layers += [nn.Conv2d(c, c * 2, 3, 2, 1), nn.InstanceNorm2d(c * 2), nn.ReLU(True)]
    layers += [CanonicalResnetBlock(ngf * 4) for _ in range(n_blocks)]
    for c in (ngf * 4, ngf * 2):
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    net = nn.Module()
    net.model = nn.Sequential(*layers)
    net.forward = net.model.forward
    return net


def randomise(net: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * (0.05 if t.dim() > 1 else 0.2))
    return net.eval()


def make_video(path, frames=24, size=(64, 48), fps=Fraction(24), audio=True, rotate90=False, codec="libx264"):
    """Moving shapes (a square crossing a gradient), with a 440 Hz sine audio track as long as the video."""
    w, h = size
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(path), "w")
    video = out.add_stream(codec, rate=fps)
    video.width, video.height = w, h
    video.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    sound = out.add_stream("aac", rate=44100) if audio else None
    ys, xs = np.mgrid[0:h, 0:w]
    for i in range(frames):
        pixels = np.stack([xs * 255 // max(w - 1, 1), ys * 255 // max(h - 1, 1), np.full_like(xs, 128)], 2)
        x0 = (i * 3) % max(w - 8, 1)
        pixels[h // 4 : h // 4 + 8, x0 : x0 + 8] = (255, 255, 0)
        frame = av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
    out.mux(video.encode())
    if sound is not None:
        seconds = frames / float(fps)
        t = np.arange(int(44100 * seconds)) / 44100
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode())
    out.close()
    if rotate90:
        set_rotation(path)
    return Path(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(checkpoints, tmp_path, max_pixels: int = 1_000_000, auth: list[tuple[str, str]] | None = None,
           training=None, **serving):
    """The app (app.py) serving `checkpoints` on a free port, behind `auth` logins if given, with
    the Train tab of `training` (a TrainingService) if given: (the app, its URL). `serving`:
    fields of ServingSettings."""
    from img2img.app.page import build_app
    from img2img.io.limits import Limits
    from img2img.service.serving import ServingSettings

    port = free_port()
    settings = ServingSettings(**serving)
    app = build_app(checkpoints, device="cpu", limits=Limits(max_pixels=max_pixels), serving=settings,
                               training=training)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=auth,
               max_file_size=f"{settings.max_upload_mb}mb")
    return app, f"http://127.0.0.1:{port}/"


def set_rotation(path):
    """Write a 90 degree display matrix into the MP4's video track header, as phones do."""
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    offset = at + 4 + (36 if version == 1 else 24) + 16  # past the times, ids, layer and volume
    struct.pack_into(">9i", data, offset, 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    Path(path).write_bytes(data)


# ---- hostile files: tiny on disk, huge when decoded (headers written by hand) ---------------------
def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares width x height RGB, with no image data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))
    return path


def tiff_planes_header(path: Path, planes: int, height: int, width: int) -> Path:
    """A TIFF whose one page declares `planes` float32 planes of height x width, stored
    separately, each strip a few bytes long (the data is not there)."""
    import struct

    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 32), (259, 3, 1, 1), (262, 3, 1, 1),
               (277, 3, 1, planes), (278, 4, 1, height), (284, 3, 1, 2), (339, 3, 1, 3)]
    n = len(entries) + 2
    ifd_size = 2 + 12 * n + 4
    offsets_at = 8 + ifd_size
    counts_at = offsets_at + 4 * planes
    data_at = counts_at + 4 * planes
    entries += [(273, 4, planes, offsets_at), (279, 4, planes, counts_at)]
    body = struct.pack("<H", n) + b"".join(
        struct.pack("<HHII", tag, kind, count, value) if kind == 4 or count > 1 else
        struct.pack("<HHIHH", tag, kind, count, value, 0) for tag, kind, count, value in sorted(entries))
    body += struct.pack("<I", 0)
    body += struct.pack(f"<{planes}I", *[data_at] * planes) + struct.pack(f"<{planes}I", *[4] * planes) + b"\0" * 4
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + body)
    return path


def nifti_header_only(path: Path, shape: tuple[int, ...], dtype=np.float32) -> Path:
    """A .nii.gz whose header declares `shape`, with no voxels after it."""
    import gzip

    import nibabel

    header = nibabel.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    with gzip.open(path, "wb") as f:
        f.write(header.binaryblock + b"\0" * 4)
    return path


def npy_header_only(path: Path, shape: tuple[int, ...], dtype=np.float32) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                 "shape": shape})
    return path


# Small versions of each method's generator: the paper architectures' layers, fewer channels.
SMALL_MODELS = {
    "pix2pix": dict(netG="unet_32", ngf=8),
    "cyclegan": dict(netG="resnet_6blocks", ngf=8),
    "cut": dict(netG="resnet_6blocks", ngf=8),
}


def make_checkpoint(method: str, path, seed: int = 0, model: dict | None = None, **data):
    """A checkpoint with random weights, BatchNorm's affine parameters included, so that the
    per-image normalisation matters to the output. `model` replaces SMALL_MODELS' settings;
    `data`: DataConfig fields (root, size, ...)."""
    torch.manual_seed(seed)
    cfg = new_run_config(method)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **(model or SMALL_MODELS[method])),
                              data=dataclasses.replace(cfg.data, **data))
    cls = METHODS[method]
    state = None
    for direction in cls.generator_keys:
        g = cls.build_generator(cfg.model, direction, "image")
        for p in g.parameters():
            torch.nn.init.normal_(p, 0.0, 0.2 if p.ndim == 1 else 0.05)
        one = generator_only_checkpoint(cfg, direction, g)
        if state is None:
            state = one
        else:
            state["method"]["networks"].update(one["method"]["networks"])
    save_checkpoint(path, state)
    return path


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


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (registered in sys.modules: its dataclasses look it up there)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

