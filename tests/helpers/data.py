"""Tiny generated data: images, paired and unpaired folders, videos, hostile headers, checkpoints."""
from __future__ import annotations

import dataclasses
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from img2img.io.writers import write_image
from img2img.methods import METHODS, new_run_config
from img2img.persist.checkpoint import generator_only_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


SHARED = ROOT.parent / "shared"


BUNDLED = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt"


CHECKPOINT_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "format_2b02544"


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
    "unsb": dict(netG="resnet_6blocks", ngf=8),
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


# ---- data beyond 8-bit RGB ---------------------------------------------------------------------
TINY_FORMATS = ["--ngf", "8", "--ndf", "8", "--num-workers", "0", "--log-every", "1", "--device", "cpu"]


TINY_P2P = ["--netG", "unet_32", "--size", "32", "--load-size", "36", *TINY_FORMATS]


TINY_CYC = ["--model", "cyclegan", "--netG", "resnet_6blocks", "--size", "32", "--load-size", "36", *TINY_FORMATS]


def smooth(rng, h, w, channels, top) -> np.ndarray:
    """Smooth random fields over [0, top]: learnable, and with many distinct levels."""
    small = rng.random((max(h // 8, 1), max(w // 8, 1), channels)).astype(np.float32)
    planes = [np.asarray(Image.fromarray(small[..., c], "F").resize((w, h), Image.BILINEAR)) for c in range(channels)]
    return np.stack(planes, axis=2) * top


def make_format_pairs(root: Path, kind: str, n: int = 4, size: int = 40, seed: int = 0) -> Path:
    """pix2pix A/ and B/ folders: "gray16" (16-bit one-channel PNGs) or "bands4" (4-band 16-bit TIFFs)."""
    rng = np.random.default_rng(seed)
    suffix, channels = {"gray16": (".png", 1), "bands4": (".tif", 4)}[kind]
    for split, count in (("train", n), ("val", 2)):
        for side in ("A", "B"):
            (root / split / side).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = smooth(rng, size, size, channels, 65535).astype(np.uint16)
            write_image(root / split / "A" / f"{i}{suffix}", a)
            write_image(root / split / "B" / f"{i}{suffix}", (65535 - a).astype(np.uint16))
    return root


def make_format_unpaired(root: Path, kind: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    suffix, channels = {"gray16": (".png", 1), "bands4": (".tif", 4)}[kind]
    for name, count in (("trainA", 3), ("trainB", 4), ("testA", 2), ("testB", 2)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_image(root / name / f"{i}{suffix}", smooth(rng, 40, 40, channels, 65535).astype(np.uint16))
    return root


def nifti_pairs(root: Path) -> Path:
    """A/ the nibabel test volume (33 x 41 x 25 int16), B/ its negative, in train and val."""
    import nibabel
    from nibabel.testing import data_path

    image = nibabel.load(Path(data_path) / "anatomical.nii")
    volume = np.asarray(image.dataobj).astype(np.int16)
    for split in ("train", "val"):
        for side, data in (("A", volume), ("B", (volume.max() - volume).astype(np.int16))):
            (root / split / side).mkdir(parents=True, exist_ok=True)
            nibabel.save(nibabel.Nifti1Image(data, image.affine, image.header), root / split / side / "head.nii.gz")
    return root
