"""The app's Train tab and its API: components, layout and events over
img2img.service.training.TrainingService, which does the work (app.py builds the rest of the page).

    train_tab(service, translation, ...)   inside the app's gr.Blocks, when training is allowed
    training_api(...)                       the named endpoints, always (they refuse when it is not)
"""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
import pandas as pd

from img2img.errors import Img2ImgError
from img2img.methods import METHODS
from img2img.service.training import PRESETS, SECTION_TITLES, TrainingService

# The page asks the run folder for news this often; the training process is not involved.
POLL_S = 2.0
TRAINING_OFF = "Training is off on this server: start it with --allow-training (see docs/app.md)."


def shown_on_page(handler):
    """The library's errors as Gradio errors: one line on the page, and in an API client (the
    translator's tabs use it too)."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Img2ImgError as e:
            raise gr.Error(str(e)) from None
    return wrapped




def curves(rows: list[dict], name: str) -> pd.DataFrame:
    """Rows {"step", NAME, "value"} as a frame of typed columns (an untyped empty one would make
    the plot read its values as categories)."""
    return pd.DataFrame({"step": pd.Series([r["step"] for r in rows], dtype="int64"),
                         name: pd.Series([r[name] for r in rows], dtype="str"),
                         "value": pd.Series([r["value"] for r in rows], dtype="float64")})


def plot(frame: pd.DataFrame, name: str):
    """A curve plot's update: hidden while there is nothing to draw, and with its legend's names
    each time (the plot keeps the colour scale of the first data it drew, so a first empty frame
    would leave every later line without a colour)."""
    if frame.empty:
        return gr.LinePlot(visible=False)
    return gr.LinePlot(value=frame, visible=True, colors_in_legend=sorted(frame[name].unique()))


def run_choices(service: TrainingService) -> list[tuple[str, str]]:
    return [(f"{v.name} ({v.state})", v.name) for v in service.list_runs()]


def training_api(service: TrainingService | None) -> None:
    """Named endpoints for gradio_client: inspect data, start, list, poll, stop, resume and delete
    runs. Without a service (no --allow-training) each refuses in one line."""
    def guarded(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            if service is None:
                raise Img2ImgError(TRAINING_OFF)
            return fn(*args, **kwargs)
        return shown_on_page(wrapped)

    @guarded
    def train_upload(file: gr.FileData) -> dict:
        """Unpack a zip of pictures into the data root: {"data": its name, "report": what it holds}."""
        name, report = service.upload(file["path"], Path(file.get("orig_name") or file["path"]).name)
        return {"data": name, "report": service.describe(report), "method": report.method.split()[0]}

    @guarded
    def train_datasets() -> list[str]:
        """The data folders under the data root."""
        return service.data.datasets()

    @guarded
    def train_inspect(data: str) -> dict:
        """What a data folder holds, in `img2img inspect`'s words."""
        report = service.inspect(data)
        return {"data": data, "report": service.describe(report), "method": report.method.split()[0]}

    @guarded
    def train_start(data: str, method: str = "pix2pix", preset: str = "quick", size: int = 0, length: int = 0,
                    unit: str = "steps", settings: dict | None = None) -> dict:
        """Start (or queue) a run: {"run": its name, "command": the same run as a terminal command}.
        `settings`: {"section.name": text} of any `img2img train` setting, e.g. {"train.lr": "1e-4"}."""
        plan = service.plan(data, method, preset, int(size) or None, int(length) or None, unit, settings or {})
        name = service.start(plan)
        return {"run": name, "command": service.runs.view(name).command}

    @guarded
    def train_runs() -> list[dict]:
        """Every run: name, state, step, total_steps."""
        return [{"run": v.name, "state": v.state, "step": v.step, "total_steps": v.total_steps}
                for v in service.list_runs()]

    @guarded
    def train_poll(run: str) -> dict:
        """A run's progress, its newest losses, and the end of its log."""
        watch = service.watch(run)
        v = watch.view
        last = watch.losses[-1]["step"] if watch.losses else None
        return {"run": v.name, "state": v.state, "step": v.step, "total_steps": v.total_steps, "epoch": v.epoch,
                "total_epochs": v.total_epochs, "images_per_s": v.images_per_s, "eta_s": v.eta_s, "error": v.error,
                "command": v.command, "queue_position": v.queue_position,
                "losses": {r["loss"]: r["value"] for r in watch.losses if r["step"] == last},
                "evaluations": watch.evaluations, "sample": watch.sample.name if watch.sample else None,
                "checkpoint": v.checkpoint.name if v.checkpoint else None, "log": watch.log_tail}

    @guarded
    def train_stop(run: str) -> str:
        """Stop a run as Ctrl-C does: it finishes its step and writes a checkpoint."""
        service.stop(run)
        return f"{run}: stopping"

    @guarded
    def train_resume(run: str) -> str:
        """Resume a stopped, failed or interrupted run from its newest checkpoint (bit for bit)."""
        service.resume(run)
        return f"{run}: resumed"

    @guarded
    def train_delete(run: str) -> str:
        """Remove a run's folder (a running run must be stopped first)."""
        service.delete(run)
        return f"{run}: deleted"

    for fn in (train_upload, train_datasets, train_inspect, train_start, train_runs, train_poll, train_stop,
               train_resume, train_delete):
        gr.api(fn, api_name=fn.__name__)


def train_tab(app: gr.Blocks, service: TrainingService, request_folder, heavy: dict):
    """The Train tab (data, settings, runs), built where the app's tabs are. `request_folder`: a
    folder of one request's own (a context manager), whose files are handed to Gradio before it
    goes; `heavy`: the concurrency group of the app's heavy requests. Returns
    `use_in(shelf, model, direction, model_card, directions_for)`, which connects "Use in the
    translator" to the translator's model menu once that exists."""
    settings = list(service.settings.values())
    with gr.Tab("Train", elem_id="train-tab"):
        gr.Markdown("Train a model on your own pictures: the same trainer and checkpoints as `img2img train`. A run "
                    "goes on in its own process when you close this page; come back to watch it.")
        # 1. Data
        with gr.Group():
            gr.Markdown("### 1. Data")
            with gr.Row():
                upload = gr.File(file_types=[".zip"], label="Upload a zip of your pictures", elem_id="train-upload",
                                 scale=2)
                with gr.Column(scale=2):
                    data = gr.Dropdown(choices=service.data.datasets(), label="…or a folder on the server",
                                       allow_custom_value=False, elem_id="train-data")
                    inspect_button = gr.Button("Inspect", size="sm")
            report = gr.Markdown(elem_id="train-report")
            thumbs = gr.Gallery(label="Samples", columns=4, height=220, elem_id="train-samples")
        # 2. Settings
        with gr.Group():
            gr.Markdown("### 2. Settings")
            with gr.Row():
                method = gr.Dropdown(choices=list(METHODS), value="pix2pix", label="Method", elem_id="train-method")
                preset = gr.Radio(choices=[(label, key) for key, label in PRESETS.items()], value="quick",
                                  label="Preset", elem_id="train-preset")
            with gr.Row():
                size = gr.Number(value=None, precision=0, label="Size (px; 0: the preset's)", elem_id="train-size")
                length = gr.Number(value=None, precision=0, label="Length (0: the preset's)", elem_id="train-length")
                unit = gr.Radio(choices=["steps", "epochs"], value="steps", label="Length in")
            fields = []
            with gr.Accordion("All settings (blank: the default; as `img2img train --help`)", open=False,
                              elem_id="train-all-settings"):
                for section, title in SECTION_TITLES.items():
                    with gr.Accordion(title, open=False):
                        for s in (s for s in settings if s.section == section):
                            fields.append(_field(s))
            command = gr.Markdown(elem_id="train-command")
            start = gr.Button("Start training", variant="primary", elem_id="train-start")
        # 3. Runs
        with gr.Group():
            gr.Markdown("### 3. Runs")
            with gr.Row():
                run = gr.Dropdown(choices=run_choices(service), label="Run", elem_id="train-run", scale=3)
                refresh = gr.Button("Refresh list", size="sm", scale=1)
            status = gr.Markdown(elem_id="train-status")
            with gr.Row():
                stop = gr.Button("Stop", size="sm", elem_id="train-stop")
                resume = gr.Button("Resume", size="sm", elem_id="train-resume")
                use = gr.Button("Use in the translator", size="sm", variant="primary", elem_id="train-use")
                confirm = gr.Checkbox(label="Yes, delete this run's folder", value=False, elem_id="train-confirm")
                delete = gr.Button("Delete", size="sm", variant="stop", elem_id="train-delete")
            with gr.Row():
                losses = gr.LinePlot(x="step", y="value", color="loss", title="Losses", height=260, visible=False,
                                     elem_id="train-losses")
                fid = gr.LinePlot(x="step", y="value", color="metric", title="Validation (FID, KID)", height=260,
                                  visible=False, elem_id="train-fid")
            sample = gr.Image(label="Newest sample grid", type="filepath", interactive=False, elem_id="train-sample")
            log = gr.Textbox(label="End of the log", lines=8, max_lines=8, interactive=False, elem_id="train-log")
            with gr.Row():
                download_pt = gr.Button("Download the model (.pt)", size="sm")
                download_onnx = gr.Button("Download its ONNX export", size="sm")
            download = gr.File(label="Download", height=80, elem_id="train-download")
            remembered = gr.BrowserState(None, storage_key="img2img-train-run")
            timer = gr.Timer(POLL_S)
            seen = gr.State(None)  # the signature of the run folder last drawn

    # ---- events -----------------------------------------------------------------------------
    def pictures_of(report_):
        with request_folder() as folder:
            return [(thumbs.move_resource_to_block_cache(p), c) for p, c in service.thumbnails(report_, folder)]

    @shown_on_page
    def on_upload(file):
        if file is None:
            return gr.update(), gr.update(), gr.update(), gr.update()
        name, report_ = service.upload(file, Path(file).name)
        return (gr.Dropdown(choices=service.data.datasets(), value=name), f"```text\n{service.describe(report_)}\n```",
                pictures_of(report_), report_.method.split()[0])

    @shown_on_page
    def on_inspect(name):
        if not name:
            raise Img2ImgError("choose a data folder, or upload a zip, first")
        report_ = service.inspect(name)
        return f"```text\n{service.describe(report_)}\n```", pictures_of(report_), report_.method.split()[0]

    def values_of(texts):
        return {s.key: t for s, t in zip(settings, texts) if t not in (None, "")}

    def on_settings(name, method_, preset_, size_, length_, unit_, *texts):
        if not name:
            return "Choose the data first; the command that the settings make appears here."
        try:
            plan = service.plan(name, method_, preset_, int(size_ or 0) or None, int(length_ or 0) or None, unit_,
                                values_of(texts))
        except Img2ImgError as e:
            return f"**Not valid:** {e}"
        return ("The same run from a terminal:\n\n```bash\n" + plan.command(service.runs.runs_dir) + "\n```")

    @shown_on_page
    def on_start(name, method_, preset_, size_, length_, unit_, *texts):
        if not name:
            raise Img2ImgError("choose a data folder, or upload a zip, first")
        plan = service.plan(name, method_, preset_, int(size_ or 0) or None, int(length_ or 0) or None, unit_,
                            values_of(texts))
        started = service.start(plan)
        return gr.Dropdown(choices=run_choices(service), value=started), started

    def on_poll(name, seen):
        """The run's news, drawn only when its folder changed: an unchanged page costs the
        browser nothing, and the machine's cores stay with the training."""
        if not name:
            return "No run chosen.", gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
        try:
            signature = service.runs.signature(name)
            if signature == seen:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
            watch = service.watch(name)
        except Img2ImgError as e:
            return str(e), gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
        v = watch.view
        text = v.line() + (f"\n\n`{v.command}`" if v.command else "")
        evals = [r for r in watch.evaluations if r["metric"] in ("fid", "kid")]
        loss_frame, eval_frame = curves(watch.losses, "loss"), curves(evals, "metric")
        # The grid is handed over as Gradio's copy: the runs folder itself is never served.
        grid = sample.move_resource_to_block_cache(watch.sample) if watch.sample else None
        return (text, plot(loss_frame, "loss"), plot(eval_frame, "metric"), grid, watch.log_tail, signature)

    @shown_on_page
    def on_stop(name):
        service.stop(name)
        return gr.Dropdown(choices=run_choices(service), value=name)

    @shown_on_page
    def on_resume(name):
        service.resume(name)
        return gr.Dropdown(choices=run_choices(service), value=name)

    @shown_on_page
    def on_delete(name, sure):
        if not sure:
            raise Img2ImgError("tick 'Yes, delete this run's folder' first")
        service.delete(name)
        return gr.Dropdown(choices=run_choices(service), value=None), False


    @shown_on_page
    def on_download(name, kind):
        with request_folder() as folder:
            return download.move_resource_to_block_cache(service.export(name, kind, folder))

    def on_load(saved):
        views = service.list_runs()
        names = [v.name for v in views]
        chosen = saved if saved in names else next((v.name for v in views if v.state in ("running", "stopping")),
                                                   names[0] if names else None)
        return gr.Dropdown(choices=run_choices(service), value=chosen), gr.Dropdown(choices=service.data.datasets())

    private = {"api_visibility": "private"}
    upload.upload(on_upload, inputs=upload, outputs=[data, report, thumbs, method], **heavy, **private)
    inspect_button.click(on_inspect, inputs=data, outputs=[report, thumbs, method], **private)
    data.input(on_inspect, inputs=data, outputs=[report, thumbs, method], **private)
    plan_inputs = [data, method, preset, size, length, unit, *fields]
    gr.on([c.change for c in plan_inputs], on_settings, inputs=plan_inputs, outputs=command, show_progress="hidden",
          **private)
    start.click(on_start, inputs=plan_inputs, outputs=[run, remembered], **private)
    watched = [status, losses, fid, sample, log, seen]
    run.change(lambda name: on_poll(name, None), inputs=run, outputs=watched, show_progress="hidden", **private)
    run.input(lambda name: name, inputs=run, outputs=remembered, **private)
    timer.tick(on_poll, inputs=[run, seen], outputs=watched, show_progress="hidden", **private)
    refresh.click(lambda name: gr.Dropdown(choices=run_choices(service), value=name), inputs=run, outputs=run,
                  **private)
    stop.click(on_stop, inputs=run, outputs=run, **private)
    resume.click(on_resume, inputs=run, outputs=run, **private)
    delete.click(on_delete, inputs=[run, confirm], outputs=[run, confirm], **private)
    download_pt.click(lambda name: on_download(name, "pt"), inputs=run, outputs=download, **heavy, **private)
    download_onnx.click(lambda name: on_download(name, "onnx"), inputs=run, outputs=download, **heavy, **private)
    app.load(on_load, inputs=remembered, outputs=[run, data], **private)

    def use_in(shelf, model: gr.Dropdown, direction: gr.Radio, model_card: gr.Markdown, directions_for) -> None:
        @shown_on_page
        def on_use(name):
            path, facts = service.model_of(name)
            info = shelf.add_checkpoint(path, f"run {name}", facts)
            key = shelf.key(info)
            radio, card = directions_for(key)
            gr.Info(f"{name} is now in the model menu: translate with it in the Image tab.")
            return gr.Dropdown(choices=shelf.choices(), value=key), radio, card

        use.click(on_use, inputs=run, outputs=[model, direction, model_card], **private)

    return use_in


def _field(setting):
    """A form field for one setting: blank means the default, as a flag left out."""
    spec = setting.spec
    info = spec.help + (f" [{setting.used_by}]" if setting.used_by else "") + \
        (f" (default {setting.default_text})" if setting.default_text else "")
    if spec.kind is bool:
        return gr.Dropdown(choices=["", "on", "off"], value="", label=spec.flag, info=info)
    if spec.choices:
        return gr.Dropdown(choices=["", *map(str, spec.choices)], value="", label=spec.flag, info=info)
    return gr.Textbox(value="", placeholder=setting.default_text, label=spec.flag, info=info, max_lines=1)
