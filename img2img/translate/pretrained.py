"""The canonical pix2pix/CycleGAN pretrained generators: registry, download and conversion.

Their files are plain state_dicts of the canonical networks. Conversion maps the names onto
this project's modules, infers the architecture, and writes a checkpoint with its config, so
`translate` and the app use it directly.
"""
from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..config import DataConfig
from ..download import ConnectionFailed, download
from ..errors import Img2ImgError
from ..files import sha256_of
from ..log import logger
from ..methods import METHODS, new_run_config
from ..persist.checkpoint import generator_only_checkpoint, save_checkpoint

CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{name}.pth"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{name}.pth"


# Where the published generators come from, and on what terms, for their cards.
ORIGIN = {"cyclegan": "CycleGAN (Zhu, Park, Isola & Efros 2017)", "pix2pix": "pix2pix (Isola, Zhu, Zhou & Efros 2017)"}
LICENCE = ("published by the authors beside their BSD-licensed code (junyanz/pytorch-CycleGAN-and-pix2pix); "
           "the training images keep their own terms")
# Domain names as people say them, where the published file's name abbreviates.
DOMAIN_WORDS = {"monet": "Monet painting", "cezanne": "Cézanne painting", "ukiyoe": "ukiyo-e print",
                "vangogh": "Van Gogh painting", "sat": "aerial photo", "edges": "edges", "shoes": "shoe",
                "label": "label map", "apple": "apple", "orange": "orange", "summer": "summer",
                "winter": "winter", "iphone": "phone photo", "dslr": "DSLR photo"}


@dataclass(frozen=True)
class PretrainedModel:
    name: str  # what users type; pix2pix models are "pix2pix/<name>" where CycleGAN has the same name
    method: str
    url: str
    domains: tuple[str, str]

    @property
    def label(self) -> str:
        """What it does, for people: "horse → zebra", "photo → Monet painting"."""
        a, b = (DOMAIN_WORDS.get(d.split("_")[0], d.split("_")[0]) for d in self.domains)
        subject = next((s for s in ("facades", "cityscapes", "yosemite", "flower") if s in self.name), "")
        return f"{a} → {b}" + (f" ({subject})" if subject else "")

    @property
    def file_name(self) -> str:
        return f"{self.name.replace('/', '_')}.pt"

    @property
    def approximate_mb(self) -> int:
        """The published file's size in MB, from its architecture (fp32 weights and statistics)."""
        return _architecture_mb(self.method)


@functools.cache
def _architecture_mb(method: str) -> int:
    cfg = new_run_config(method)
    if method == "pix2pix":
        cfg.model.netG = "unet_256"  # the published pix2pix generators' (256 px)
    net = METHODS[method].build_generator(cfg.model, "AtoB")
    return round(sum(t.numel() for t in net.state_dict().values()) * 4 / 1e6)


def _domains(name: str) -> tuple[str, str]:
    if name.startswith("style_"):
        return "photo", name.removeprefix("style_")
    base = name.split("_", 1)[1] if name.startswith(("facades_", "cityscapes_")) else name
    a, _, b = base.partition("2")
    return a, b


def _registry() -> dict[str, PretrainedModel]:
    models = {}
    for n in ("horse2zebra", "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe",
              "style_vangogh", "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite",
              "sat2map", "map2sat", "facades_photo2label", "facades_label2photo", "cityscapes_photo2label",
              "cityscapes_label2photo", "iphone2dslr_flower"):
        models[n] = PretrainedModel(n, "cyclegan", CYCLEGAN_URL.format(name=n), _domains(n))
    for n in ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night"):
        name = f"pix2pix/{n}" if n in models else n
        models[name] = PretrainedModel(name, "pix2pix", PIX2PIX_URL.format(name=n), _domains(n))
    return models


PRETRAINED = _registry()


# One lock per destination: two callers asking for one model at once cause one download.
_download_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def download_pretrained(name: str, folder: Path | str = "checkpoints", url: str | None = None,
                        progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download a published generator and convert it to `folder/<name>.pt` (idempotent).

    The raw file resumes after an interruption (`download`); one that does not convert (a
    corrupt or wrong file) is removed, so the next call downloads afresh. Only the converted
    checkpoint, written atomically, ends in `.pt`: nothing half-downloaded is ever listed."""
    try:
        entry = PRETRAINED[name]
    except KeyError:
        raise Img2ImgError(f"unknown pretrained model {name!r}; `img2img pretrained list` shows the names") from None
    folder = Path(folder)
    dst = folder / entry.file_name
    with _locks_guard:
        lock = _download_locks.setdefault(dst.resolve(), threading.Lock())
    with lock:
        if dst.is_file():
            logger.info(f"{name}: already converted at {dst}")
            return dst
        raw_path = folder / ".downloads" / f"{name.replace('/', '_')}.pth"
        source = url or entry.url
        if url is None and source.startswith("http://"):
            # The authors publish http:// links; HTTPS is used where their server answers it.
            secure = "https://" + source.removeprefix("http://")
            try:
                raw, source = download(secure, raw_path, progress=progress), secure
            except ConnectionFailed as e:
                logger.warning(f"{name}: no HTTPS from {urlparse(secure).netloc} ({e}); downloading over HTTP")
                raw = download(source, raw_path, progress=progress)
        else:
            raw = download(source, raw_path, progress=progress)
        try:
            convert(raw, dst, method=entry.method, domains=entry.domains,
                    provenance={"source": source, "origin": ORIGIN[entry.method], "licence": LICENCE,
                                "sha256": sha256_of(raw)})
        except Img2ImgError as e:
            raw.unlink(missing_ok=True)
            raise Img2ImgError(f"{name}: the downloaded file is not the published generator ({e}); removed it, "
                               "try again") from None
        raw.unlink()
        return dst


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def infer_architecture(state: dict[str, torch.Tensor]) -> tuple[str, str, int]:
    """(netG, norm, ngf) from canonical key names and shapes."""
    if any(k.startswith("model.model.") for k in state):
        # Each U-Net level has one down-conv and one up-conv, both 4x4.
        convs = [v for k, v in state.items() if k.endswith(".weight") and v.dim() == 4]
        num_downs = len(convs) // 2
        netG = f"unet_{2 ** num_downs}"
        ngf = state["model.model.0.weight"].shape[0]
    elif "model.1.weight" in state and state["model.1.weight"].shape[-1] == 7:
        n_blocks = len({k.split(".")[1] for k in state if ".conv_block." in k})
        netG = f"resnet_{n_blocks}blocks"
        ngf = state["model.1.weight"].shape[0]
    else:
        raise Img2ImgError("not a canonical U-Net or ResNet generator state_dict (unknown key layout)")
    # BatchNorm has affine 1-D weights; the canonical InstanceNorm has none.
    norm = "batch" if any(v.dim() == 1 and k.endswith(".weight") for k, v in state.items()) else "instance"
    return netG, norm, int(ngf)


def is_antialiased(state: dict[str, torch.Tensor]) -> bool:
    """CUT's reference ResNet saves the fixed blur filters of its anti-aliased sampling as
    `model.N.filt` buffers; a generator with them is a CUT generator."""
    return any(k.endswith(".filt") for k in state)


def unet_name_map(num_downs: int) -> dict[str, str]:
    """Our module paths -> canonical ones, level by level down the U-Net's recursion."""
    mapping, ours, theirs = {}, "model.", "model.model."
    for level in range(num_downs):
        if level == 0:  # outermost: [down conv, inner, relu, up conv, tanh]
            pairs, inner = {"down.0": "0", "up.1": "3"}, "1"
        elif level == num_downs - 1:  # innermost: [relu, down conv, relu, up conv, norm]
            pairs, inner = {"down.1": "1", "up.1": "3", "up.2": "4"}, None
        else:  # [relu, down conv, norm, inner, relu, up conv, norm, (dropout)]
            pairs, inner = {"down.1": "1", "down.2": "2", "up.1": "5", "up.2": "6"}, "3"
        mapping.update({ours + o: theirs + t for o, t in pairs.items()})
        if inner is not None:
            ours, theirs = ours + "inner.", f"{theirs}{inner}.model."
    return mapping


def convert_state_dict(state: dict[str, torch.Tensor], net: torch.nn.Module, netG: str) -> dict[str, torch.Tensor]:
    """The canonical state_dict renamed for `net`; strict apart from what old files differ in."""
    state = strip_prefix(state)
    mapping = unet_name_map(net.num_downs) if netG.startswith("unet") else {}
    ours = net.state_dict()
    converted, missing = {}, []
    for key in ours:
        module, _, param = key.rpartition(".")
        source = f"{mapping.get(module, module)}.{param}"
        if source in state:
            converted[key] = state.pop(source)
        elif param == "num_batches_tracked":  # absent from old files
            converted[key] = ours[key]
        else:
            missing.append(source)
    # Old files keep running statistics for InstanceNorm and counters we do not use; CUT's keep
    # its blur filters, which are constants here.
    extra = [k for k in state if not re.search(r"\.(running_mean|running_var|num_batches_tracked|filt)$", k)]
    if missing or extra:
        raise Img2ImgError(f"weights do not fit {netG}: missing {missing[:3]}, unexpected {extra[:3]}")
    return converted


def convert(src: Path | str, dst: Path | str, netG: str | None = None, norm: str | None = None,
            method: str | None = None, domains: tuple[str, str] = ("A", "B"), size: int = 256,
            provenance: dict[str, str] | None = None) -> Path:
    """Convert a canonical pix2pix/CycleGAN or CUT generator .pth into an img2img checkpoint that
    translates AtoB. `provenance` (where it came from, its licence, its digest) is stored in it
    for the model's card; by default the source is the file's path."""
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:
        raise Img2ImgError(f"{src}: not a readable state_dict ({type(e).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = strip_prefix(state)
    inferred_netG, inferred_norm, ngf = infer_architecture(state)
    netG, norm = netG or inferred_netG, norm or inferred_norm
    antialias = is_antialiased(state)
    method = method or ("cut" if antialias else "cyclegan" if netG.startswith("resnet") else "pix2pix")
    cfg = new_run_config(method, data=DataConfig(size=size, load_size=size, domain_a=domains[0],
                                                       domain_b=domains[1]))
    cfg.model.netG, cfg.model.norm, cfg.model.ngf, cfg.model.antialias = netG, norm, ngf, antialias
    net = METHODS[method].build_generator(cfg.model, "AtoB")
    converted = convert_state_dict(state, net, netG)
    net.load_state_dict(converted, strict=True)
    save_checkpoint(dst, generator_only_checkpoint(cfg, "AtoB", net, **(provenance or {"source": str(src)})))
    logger.info(f"converted {src} ({method}, {netG}{', anti-aliased' if antialias else ''}, {norm} norm, ngf {ngf}) "
                f"to {dst}")
    return Path(dst)
