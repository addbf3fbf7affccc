"""The app's models: the checkpoint folder's, Hub models, and the published ones a visitor adds;
each loaded once (TranslatorCache), each request's model resolved and checked here."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable

from ..errors import Img2ImgError
from ..io.readers import list_images
from ..log import logger
from ..persist.hub import SCHEME as HUB_SCHEME
from ..translate.catalog import (
    ModelInfo,
    TranslatorCache,
    describe_checkpoint,
    describe_hub_model,
    discover_checkpoints,
    model_card_examples,
)
from ..translate.pretrained import PRETRAINED, PretrainedModel, download_pretrained
from ..translate.translator import Translator

HOW_TO_GET_A_MODEL = """
### No model yet
No checkpoint was found in `{folder}`. To get one:

- run `img2img demo --install-to {folder}`, which trains a small demo model in about two
  minutes and puts it there, or
- train your own: `img2img train --model pix2pix --data DATASET --out runs/mine`, then copy
  `runs/mine/checkpoints/latest.pt` into `{folder}/` (or start the app with
  `--checkpoints runs/mine/checkpoints`).

Then restart the app, or add a published model below.
"""

# Live frames arrive decoded (Gradio decodes the browser's JPEG); larger ones are refused
# before they are scaled.

class ServiceError(Img2ImgError):
    """A request refused or failed, in words for the visitor."""


class DownloadsNotAllowed(ServiceError):
    def __init__(self) -> None:
        super().__init__("Adding models is for logged-in users of this server; start it with --auth.")


Progress = Callable[..., None]


def _no_progress(fraction: float | None, desc: str = "") -> None:
    pass


def visitor_message(error: Exception, *paths: str | Path) -> str:
    """The error's text without the server's folders of the request's files."""
    text = str(error)
    for path in paths:
        text = text.replace(str(Path(path).parent) + "/", "")
    return text


class ModelShelf:
    """The models the app offers: the checkpoints in its folder, listed again when one is added."""

    def __init__(self, folder: Path, hub_models: list[str] | tuple[str, ...] = ()) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self.hub: list[ModelInfo] = []
        self.added: list[ModelInfo] = []  # checkpoints outside the folder, by name (training runs)
        self.hub_skipped: list[str] = []
        for reference in hub_models:
            try:
                self.hub.append(describe_hub_model(reference))
            except Img2ImgError as e:
                self.hub_skipped.append(str(e))
        self.refresh()

    def refresh(self) -> None:
        models, skipped = discover_checkpoints(self.folder)
        with self._lock:
            self.models = models + self.hub + self.added
            self.skipped = [visitor_message(line, self.folder / "x") for line in skipped] + self.hub_skipped

    def add_hub(self, reference: str, max_bytes: int | None = None) -> ModelInfo:
        """A Hub model (downloaded into the Hub's cache unless there, refused if its files are
        over `max_bytes`) added to the shelf."""
        info = describe_hub_model(reference, max_bytes)
        with self._lock:
            self.hub = [m for m in self.hub if m.hub_repo != info.hub_repo] + [info]
        self.refresh()
        return info

    def add_checkpoint(self, path: Path, name: str, facts: tuple[tuple[str, str], ...] = ()) -> ModelInfo:
        """A checkpoint outside the folder, offered as `name` with `facts` first on its card; one
        of the same name is replaced."""
        info = describe_checkpoint(path)
        info = dataclasses.replace(info, given_name=name, facts=(*facts, *info.facts))
        with self._lock:
            self.added = [m for m in self.added if m.given_name != name] + [info]
        self.refresh()
        return info

    def key(self, info: ModelInfo) -> str:
        """The model's name on the page: a Hub model's repo or its given name, else its path
        inside the folder (no server path)."""
        if info.hub_repo or info.given_name:
            return info.given_name or info.hub_repo
        return str(info.path.relative_to(self.folder)) if info.path.is_relative_to(self.folder) else info.path.name

    def choices(self) -> list[tuple[str, str]]:
        return [(m.label, self.key(m)) for m in self.models]

    def find(self, key: str) -> ModelInfo | None:
        return next((m for m in self.models if key in (self.key(m), str(m.path), m.label, m.name)), None)


def published_button_label(entry: PretrainedModel, added: bool) -> str:
    return f"✓ {entry.label}, added" if added else f"{entry.label} · {entry.method} · {entry.approximate_mb} MB"


def direction_choices(info: ModelInfo | None) -> list[tuple[str, str]]:
    return [(info.direction_label(d), d) for d in info.directions] if info else [("A → B", "AtoB")]


class AppModels:
    """The models a page offers, and the Translator of the one a request names."""

    def __init__(self, checkpoint_dir: Path | str, work: Path, device: str = "auto", published_url: str | None = None,
                 precision: str = "auto", hub_models: list[str] | tuple[str, ...] = (),
                 allow_downloads: bool = True, max_download_mb: int | None = None) -> None:
        """`hub_models`: `hf://user/name[@revision]` models offered beside the folder's;
        `allow_downloads`: serving.downloads_allowed; `max_download_mb`: the most a Hub model a
        visitor adds may take (None: no bound)."""
        self.checkpoint_dir = Path(checkpoint_dir)
        self.work = work
        self.published_url = published_url
        self.allow_downloads = allow_downloads
        self.max_download_bytes = None if max_download_mb is None else max_download_mb * 10**6
        self.shelf = ModelShelf(self.checkpoint_dir, hub_models)
        self.cache = TranslatorCache(device, precision)
        choices = self.shelf.choices()
        self.default_model = choices[0][1] if choices else None

    def resolve(self, model: str | None) -> ModelInfo:
        if not self.shelf.models:
            raise ServiceError("No model is available: put a checkpoint in the app's model folder or add a published "
                               "one (see the page).")
        key = model or self.default_model
        info = self.shelf.find(key)
        if info is None:
            raise ServiceError(f"Unknown model {key!r}; choose one of: {', '.join(self.shelf.key(m) for m in self.shelf.models)}")
        return info

    def load(self, model: str | None, direction: str, steps: int | None = None) -> tuple[ModelInfo, Translator]:
        """The model asked for, checked to translate `direction`, and its (cached) Translator; a
        UNSB model's translating in `steps` steps (None: all it was trained with; other models
        ignore it)."""
        info = self.resolve(model)
        if direction not in info.directions:
            raise ServiceError(f"{info.name} translates {' and '.join(info.directions)} only, not {direction}.")
        try:
            translator = self.cache.get(info.path)
        except Img2ImgError as e:
            raise ServiceError(f"{self.shelf.key(info)} cannot be loaded: {visitor_message(e, info.path)}") from None
        if info.steps and steps is not None:
            if not 1 <= steps <= info.steps:
                raise ServiceError(f"{info.name} translates in 1 to {info.steps} steps, not {steps}")
            translator = translator.with_steps(int(steps))
        return info, translator

    def ready(self, model: str | None) -> bool:
        """Whether `model` translates at once: loaded, and on a CPU its precision chosen."""
        try:
            return self.cache.has(self.resolve(model).path)
        except ServiceError:
            return True  # nothing to prepare: the translation itself says what is wrong

    def prepare(self, model: str) -> None:
        """Load `model` (on the CPU: its ONNX export, and under --precision auto its int8 model
        made and measured against fp32, about a minute for a U-Net 256) in the background, so
        that its first translation does not pay for it; that translation waits for it instead."""
        def load() -> None:
            try:
                self.cache.get(self.resolve(model).path)
            except Img2ImgError as e:
                logger.warning(f"warning: preparing {model}: {e}")
        threading.Thread(target=load, name="img2img-prepare", daemon=True).start()

    def preload(self) -> Translator | None:
        """Load the default model (on the CPU, also its ONNX export) before the first request."""
        return self.cache.get(self.resolve(None).path) if self.default_model else None

    def examples(self, examples_dir: Path | str | None) -> list[Path]:
        if examples_dir and Path(examples_dir).is_dir():
            return list_images(Path(examples_dir))
        return model_card_examples(self.shelf.models, self.work / "examples")

    def add_published(self, name: str, progress: Progress = _no_progress) -> Path:
        """Download and convert a published model into the checkpoint folder, and list it."""
        if not self.allow_downloads:
            raise DownloadsNotAllowed()
        entry = PRETRAINED[name]

        def report(done: int, total: int | None) -> None:
            of = f" of {total / 1e6:.1f}" if total else ""
            progress(done / total if total else None, desc=f"Downloading {entry.label}: {done / 1e6:.1f}{of} MB")

        progress(0, desc=f"Downloading {entry.label}")
        url = self.published_url.format(name=name) if self.published_url else None
        path = download_pretrained(name, self.checkpoint_dir, url=url, progress=report)
        self.shelf.refresh()
        return path

    def add_hub(self, reference: str) -> ModelInfo:
        """A model from the Hugging Face Hub, `user/name[@revision]` or `hf://...`, added to the shelf."""
        if not self.allow_downloads:
            raise DownloadsNotAllowed()
        reference = reference.strip()
        if not reference:
            raise ServiceError("Give a Hub model as user/name or user/name@revision.")
        try:
            return self.shelf.add_hub(reference if reference.startswith(HUB_SCHEME) else HUB_SCHEME + reference,
                                      self.max_download_bytes)
        except Img2ImgError as e:
            raise ServiceError(str(e)) from None

    def is_added(self, entry: PretrainedModel) -> bool:
        return (self.checkpoint_dir / entry.file_name).is_file()
