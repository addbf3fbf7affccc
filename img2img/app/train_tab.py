"""The Train tab: components, layout and events over service.training.TrainingService, which does
the work (its endpoints for API clients are train_api.py)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from ..errors import Img2ImgError
from ..methods import METHODS
from ..service.training import PRESETS, SECTION_TITLES, TrainingService
from .glue import shown_on_page

# The page asks the run folder for news this often; the training process is not involved.
POLL_S = 2.0


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
                pictures_of(report_), report_.method)

    @shown_on_page
    def on_inspect(name):
        if not name:
            raise Img2ImgError("choose a data folder, or upload a zip, first")
        report_ = service.inspect(name)
        return f"```text\n{service.describe(report_)}\n```", pictures_of(report_), report_.method

    def values_of(texts):
        return {s.key: t for s, t in zip(settings, texts) if t not in (None, "")}

    def on_settings(name, method_, preset_, size_, length_, unit_, *texts):
        if not name:
            return "Choose the data first; the command that the settings make appears here."
        try:
            plan = service.plan(name, method_, preset_, size_, length_, unit_, values_of(texts))
        except Img2ImgError as e:
            return f"**Not valid:** {e}"
        return ("The same run from a terminal:\n\n```bash\n" + plan.command(service.runs.runs_dir) + "\n```")

    @shown_on_page
    def on_start(name, method_, preset_, size_, length_, unit_, *texts):
        if not name:
            raise Img2ImgError("choose a data folder, or upload a zip, first")
        plan = service.plan(name, method_, preset_, size_, length_, unit_, values_of(texts))
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
        return (gr.Dropdown(choices=run_choices(service), value=service.default_run(saved)),
                gr.Dropdown(choices=service.data.datasets()))

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
