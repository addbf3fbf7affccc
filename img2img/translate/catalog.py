"""Finding trained models on disk and keeping loaded ones, for the app and other front ends."""
from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..config import size_text
from ..errors import Img2ImgError
from ..methods import METHODS
from ..persist.checkpoint import checkpoint_config, load_checkpoint, safetensors_files, stored_directions
from ..persist.hub import fetch_model, parse_reference
from .translator import Translator


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    method: str
    directions: tuple[str, ...]
    size: str  # the training crop: "256", or "512x256"
    data: str
    # The AtoB generator's input and output domains (the data's B and A if it was trained BtoA).
    domains: tuple[str, str] = ("A", "B")
    # What a user needs to trust it, as (name, value) lines: from the checkpoint and its card.
    facts: tuple[tuple[str, str], ...] = ()
    # For a model from the Hugging Face Hub: "user/name", as loaded (see img2img.persist.hub).
    hub_repo: str | None = None
    # A name given by whoever added it (e.g. the app's training run it came from).
    given_name: str | None = None
    # A UNSB model's trained steps of its bridge (a translation takes 1 to this many); 0: others.
    steps: int = 0

    @property
    def name(self) -> str:
        """A Hub model's repo, a bundled model's folder name (its file is model.pt beside a card),
        else the file's stem."""
        if self.given_name or self.hub_repo:
            return self.given_name or self.hub_repo
        return self.path.parent.name if has_model_card(self.path) and self.path.stem == "model" else self.path.stem

    def direction_label(self, direction: str) -> str:
        source, target = self.domains if direction == "AtoB" else self.domains[::-1]
        return f"{source} → {target}"

    @property
    def label(self) -> str:
        """What the model does, e.g. "maps_aerial2map: aerial photo → map"."""
        if self.domains == ("A", "B"):
            data = f" on {Path(self.data).name}" if self.data else ""
            return f"{self.name}: {self.method}{data}, {' and '.join(self.directions)}"
        if len(self.directions) == 2:
            return f"{self.name}: {self.domains[0]} ↔ {self.domains[1]}"
        return f"{self.name}: {self.direction_label(self.directions[0])}"

    @property
    def details(self) -> str:
        return f"{self.method}, trained at {self.size} px on {Path(self.data).name or 'its data'}"

    def card(self) -> str:
        """The model's card as Markdown: only what the checkpoint and its README hold."""
        lines = [f"**{self.name}**: {self.direction_label(self.directions[0])}" if self.domains != ("A", "B")
                 else f"**{self.name}**"]
        lines += [f"- {name}: {value}" for name, value in self.facts]
        return "\n".join(lines)


def describe_checkpoint(path: Path) -> ModelInfo:
    """Read only the stored config (memory-mapped, so large checkpoints cost nothing to list)."""
    state = load_checkpoint(path, mmap=True)
    cfg = checkpoint_config(state)
    domains = (cfg.data.domain_a, cfg.data.domain_b)
    return ModelInfo(path=path, method=cfg.method, directions=tuple(stored_directions(state)), size=size_text(cfg.data.size),
                     data=cfg.data.root, domains=domains if cfg.data.direction == "AtoB" else domains[::-1],
                     facts=tuple(checkpoint_facts(path, state, cfg)), steps=trained_steps(cfg))


def trained_steps(cfg) -> int:
    """The steps of a UNSB model's bridge (its translation takes 1 to this many); 0 for others."""
    return METHODS[cfg.method].translation_steps(cfg.method_config)


def describe_hub_model(reference: str, max_bytes: int | None = None) -> ModelInfo:
    """A model on the Hub (`hf://user/name[@revision]`), fetched into the Hub's cache (refused
    from the listing if its files are over `max_bytes`), with the commit it resolved to among
    its facts."""
    repo, _ = parse_reference(reference)
    folder = fetch_model(reference, max_bytes=max_bytes)  # the Hub cache's snapshot folder is named by the commit
    info = describe_checkpoint(safetensors_files(folder)[0])
    return dataclasses.replace(info, hub_repo=repo, facts=(("Hugging Face Hub", f"{repo} at commit {folder.name}"),
                                                           *info.facts))


def checkpoint_facts(path: Path, state: dict, cfg) -> list[tuple[str, str]]:
    """The card's lines: method and architecture, data, resolution, steps; the provenance of a
    converted model; and, from a model card (README.md) beside it, its training command and the
    validation metrics of its own row."""
    facts = [("method", f"{cfg.method}, {cfg.model.netG}, ngf {cfg.model.ngf}, {cfg.model.norm} norm")]
    if trained_steps(cfg):
        facts.append(("translation", f"in 1 to {trained_steps(cfg)} steps of its bridge, {trained_steps(cfg)} by "
                                     "default; fewer are faster"))
    converted = "origin" in state or "source" in state
    if converted:
        facts.append(("origin", state.get("origin") or "converted from another project's generator"))
        if state.get("source"):
            facts.append(("source", state["source"]))
        if state.get("licence"):
            facts.append(("licence", state["licence"]))
        if state.get("sha256"):
            facts.append(("sha256 of the published file", state["sha256"]))
    else:
        facts.append(("training data", Path(cfg.data.root).name or "not recorded"))
    facts.append(("resolution", f"trained at {size_text(cfg.data.size)} px"))
    progress = state.get("progress") or {}
    if progress.get("step"):
        steps, epochs = progress["step"], progress.get("epoch", 0)
        facts.append(("training", f"{steps} step{'s' * (steps != 1)}, {epochs} epoch{'s' * (epochs != 1)} at batch "
                                  f"{cfg.data.batch_size}"))
    card = path.parent / "README.md"
    if has_model_card(path):
        text = card.read_text(encoding="utf-8")
        command = training_command(text)
        if command:
            facts.append(("training command", f"`{command}`"))
        facts += [(f"val {k}", v) for k, v in card_metrics(text).items()]
    return facts


def training_command(card: str) -> str | None:
    """The first `img2img train` command of a card's code blocks, its continuation lines joined."""
    for block in re.findall(r"```(?:bash)?\n(.*?)```", card, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.strip().startswith("img2img train"):
                return " ".join(line.split())
    return None


def card_metrics(card: str) -> dict[str, str]:
    """The validation metrics of the model itself: the bold row of the card's table whose header
    names L1, as {header: value}."""
    lines = card.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and "L1" in line:
            header = [c.strip() for c in line.strip("|").split("|")]
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                if cells and cells[0].startswith("**"):
                    return {h.rstrip(" ↓↑"): c.strip("*") for h, c in zip(header[1:], cells[1:])}
    return {}


def has_model_card(path: Path) -> bool:
    return (path.parent / "README.md").is_file() and path.parent.name != "checkpoints"


def discover_checkpoints(folder: Path | str) -> tuple[list[ModelInfo], list[str]]:
    """Every img2img checkpoint under `folder` (recursively), those with a model card (a
    README.md beside them, as bundled models have) first; and a line for each file skipped."""
    models, skipped = [], []
    folder = Path(folder)
    if not folder.is_dir():
        return models, skipped
    for path in sorted(folder.rglob("*.pt"), key=lambda p: (not has_model_card(p), str(p))):
        try:
            models.append(describe_checkpoint(path))
        except Img2ImgError as e:
            skipped.append(str(e))
    return models, skipped


def model_card_examples(models: list[ModelInfo], out_dir: Path) -> list[Path]:
    """Example inputs for the app: the input (left third) of each model card's sample triplets
    (`samples/sample_*.jpg` beside the checkpoint), written to `out_dir`."""
    examples = []
    for info in models:
        for sample in sorted((info.path.parent / "samples").glob("sample_*.jpg")) if has_model_card(info.path) else []:
            with Image.open(sample) as triplet:
                crop = triplet.crop((0, 0, triplet.width // 3, triplet.height))
            out = out_dir / f"{info.path.parent.name}_{sample.stem}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            crop.save(out, quality=95)
            examples.append(out)
    return examples


class TranslatorCache:
    """Loads each checkpoint once (reloading if the file changes) and shares it between requests."""

    def __init__(self, device: str = "auto", precision: str = "auto") -> None:
        self.device = device
        self.precision = precision
        self._loaded: dict[Path, tuple[int, Translator]] = {}
        self._lock = threading.Lock()

    def has(self, path: Path | str) -> bool:
        """Whether `path` is loaded as it is now on disk: a get() that costs nothing."""
        path = Path(path)
        cached = self._loaded.get(path)
        return cached is not None and path.is_file() and cached[0] == path.stat().st_mtime_ns

    def get(self, path: Path | str) -> Translator:
        path = Path(path)  # a .pt file, or a Hub model's model.safetensors
        if not path.is_file():
            raise Img2ImgError(f"{path}: model file not found")
        mtime = path.stat().st_mtime_ns
        with self._lock:
            cached = self._loaded.get(path)
            if cached is None or cached[0] != mtime:
                self._loaded[path] = (mtime, Translator.from_checkpoint(path, device=self.device,
                                                                                precision=self.precision))
            return self._loaded[path][1]
