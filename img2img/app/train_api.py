"""The Train tab's named endpoints for gradio_client: inspect data, start, list, poll, stop, resume
and delete runs. Without a service (no --allow-training) each refuses in one line."""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from ..errors import Img2ImgError
from ..service.training import TrainingService
from .glue import shown_on_page, stoppable, user_of

TRAINING_OFF = "Training is off on this server: start it with --allow-training (see docs/app.md)."
NOT_AN_UPLOAD = "that file is not an upload of this server: send the zip itself (gradio_client's handle_file)"


def uploaded_path(file: dict) -> Path:
    """The path of a file this server received as an upload. A reference without Gradio's
    metadata skips Gradio's own path check, so the path must lie in Gradio's upload folder; any
    other is refused in the same words whether or not it exists, telling nothing of the server."""
    path = Path(str(file.get("path", ""))).resolve()
    uploads = Path(get_upload_folder()).resolve()
    if not path.is_relative_to(uploads) or not path.is_file():
        raise Img2ImgError(NOT_AN_UPLOAD)
    return path


def training_api(app: gr.Blocks, service: TrainingService | None, heavy: dict | None = None,
                 time_limit_s: float | None = None) -> None:
    """Named endpoints for gradio_client: inspect data, start, list, poll, stop, resume and delete
    runs. Without a service (no --allow-training) each refuses in one line. Unpacking and
    inspecting data share the app's heavy queue (`heavy`), and stop at `time_limit_s`, on a
    cancel, or when the client goes away."""
    def guarded(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            if service is None:
                raise Img2ImgError(TRAINING_OFF)
            return fn(*args, **kwargs)
        return shown_on_page(wrapped)

    heavy_work = stoppable(app, time_limit_s)

    @heavy_work
    @guarded
    def train_upload(file: gr.FileData, request: gr.Request = None) -> dict:
        """Unpack a zip of pictures into the data root: {"data": its name, "report": what it holds}."""
        name, report = service.upload(uploaded_path(file), Path(file.get("orig_name") or file["path"]).name)
        return {"data": name, "report": service.describe(report), "method": report.method}

    @guarded
    def train_datasets() -> list[str]:
        """The data folders under the data root."""
        return service.data.datasets()

    @heavy_work
    @guarded
    def train_inspect(data: str, request: gr.Request = None) -> dict:
        """What a data folder holds, in `img2img inspect`'s words."""
        report = service.inspect(data)
        return {"data": data, "report": service.describe(report), "method": report.method}

    @guarded
    def train_models(method: str = "pix2pix", request: gr.Request = None) -> list[dict]:
        """The trained models a run of `method` may start from: [{"key", "label"}] (start_from)."""
        return [{"key": key, "label": label} for label, key in service.starting.offered(method, user_of(request))]

    @guarded
    def train_start(data: str, method: str = "pix2pix", preset: str = "quick", size: int = 0, length: int = 0,
                    unit: str = "steps", settings: dict | None = None, start_from: str = "",
                    request: gr.Request = None) -> dict:
        """Start (or queue) a run: {"run": its name, "command": the same run as a terminal command}.
        `settings`: {"section.name": text} of any `img2img train` setting, e.g. {"train.lr": "1e-4"};
        `start_from`: a key of /train_models (blank: from scratch; the "finetune" preset needs one)."""
        plan = service.plan(data, method, preset, size, length, unit, settings or {}, start_from, user_of(request))
        name = service.start(plan, user_of(request))
        return {"run": name, "command": service.runs.view(name).command}

    @guarded
    def train_runs() -> list[dict]:
        """Every run: name, state, step, total_steps, and where a Slurm runner's job is ("Slurm job 12: pending")."""
        return [{"run": v.name, "state": v.state, "step": v.step, "total_steps": v.total_steps,
                 "scheduler": v.scheduler} for v in service.list_runs()]

    @guarded
    def train_poll(run: str) -> dict:
        """A run's progress, its newest losses, and the end of its log."""
        watch = service.watch(run)
        v = watch.view
        last = watch.losses[-1]["step"] if watch.losses else None
        return {"run": v.name, "state": v.state, "step": v.step, "total_steps": v.total_steps, "epoch": v.epoch,
                "total_epochs": v.total_epochs, "images_per_s": v.images_per_s, "eta_s": v.eta_s, "error": v.error,
                "command": v.command, "queue_position": v.queue_position, "scheduler": v.scheduler,
                "losses": {r["loss"]: r["value"] for r in watch.losses if r["step"] == last},
                "evaluations": watch.evaluations, "sample": watch.sample.name if watch.sample else None,
                "checkpoint": v.checkpoint.name if v.checkpoint else None, "log": watch.log_tail}

    @guarded
    def train_stop(run: str, request: gr.Request = None) -> str:
        """Stop a run as Ctrl-C does: it finishes its step and writes a checkpoint."""
        service.stop(run, user_of(request))
        return f"{run}: stopping"

    @guarded
    def train_resume(run: str, request: gr.Request = None) -> str:
        """Resume a stopped, failed or interrupted run from its newest checkpoint (bit for bit)."""
        service.resume(run, user_of(request))
        return f"{run}: resumed"

    @guarded
    def train_delete(run: str, request: gr.Request = None) -> str:
        """Remove a run's folder (a running run must be stopped first)."""
        service.delete(run, user_of(request))
        return f"{run}: deleted"

    for fn in (train_datasets, train_models, train_start, train_runs, train_poll, train_stop, train_resume, train_delete):
        gr.api(fn, api_name=fn.__name__)
    for fn in (train_upload, train_inspect):
        gr.api(fn, api_name=fn.__name__, time_limit=int(time_limit_s) if time_limit_s else None, **(heavy or {}))
