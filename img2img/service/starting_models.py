"""The trained models a run from the page may start from (`img2img train --init-from`): the
app's own models and the user's runs with a checkpoint, each of a method that trains on the same
kind of data. A page offers these by key, never by server path."""
from __future__ import annotations

from pathlib import Path

from ..errors import Img2ImgError
from ..methods import METHODS
from ..training.run_folder import RunFolder
from ..translate.catalog import discover_checkpoints
from .runs import RunManager


class StartingModels:
    """`models_dir`: the app's models (None: none); `runs`: the runs, from which their owners (and
    admins) may start others."""

    def __init__(self, models_dir: Path | str | None, runs: RunManager) -> None:
        self.models_dir = Path(models_dir) if models_dir else None
        self.runs = runs

    def offered(self, method: str, user: str | None = None) -> list[tuple[str, str]]:
        """(label, key) of the trained models a run of `method` may start from: the app's models
        and the user's runs with a checkpoint, of a method that trains on the same kind of data.
        Keys are "model:FILE" (under the models folder) and "run:NAME"; a page offers only these."""
        kind = METHODS[method].dataset_kind
        offered = []
        if self.models_dir is not None:
            for info in discover_checkpoints(self.models_dir)[0]:
                if METHODS[info.method].dataset_kind == kind:
                    offered.append((f"{info.name}: {info.method}, {info.size} px ({info.path.name})",
                                    f"model:{info.path.relative_to(self.models_dir)}"))
        for view in self.runs.runs():
            if view.checkpoint is None:
                continue
            try:
                self.runs.check_owner(view.name, user, "start from")  # its owner's, or an admin's
            except Img2ImgError:
                continue
            try:
                run_method = RunFolder(self.runs.folder(view.name)).config().method
            except Img2ImgError:  # no config.json yet
                continue
            if METHODS[run_method].dataset_kind == kind:
                offered.append((f"run {view.name}: {run_method}, step {view.step}", f"run:{view.name}"))
        return offered

    def path(self, key: str, method: str, user: str | None = None) -> Path:
        """The checkpoint a "Start from" key names, one of `offered`' only: a page never
        names a server path."""
        if key not in {k for _, k in self.offered(method, user)}:
            raise Img2ImgError(f"start from {key!r}: not one of the trained models this server offers for {method}")
        kind, _, name = key.partition(":")
        if kind == "model":
            return (self.models_dir / name).resolve()
        return self.runs.checkpoint(name)
