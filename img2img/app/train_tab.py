"""The Train tab: components, layout and events over service.training.TrainingService, which does
the work (its endpoints for API clients are train_api.py)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..errors import Img2ImgError
from ..methods import METHODS
from ..service.runs import same_settings
from ..service.training import PRESETS, SECTION_TITLES, TrainingService, default_size
from .glue import in_place, stoppable, user_of
from .train_runs import run_choices, runs_section


def train_tab(app: gr.Blocks, service: TrainingService, request_folder, heavy: dict, time_limit_s: float | None = None):
    """The Train tab (data, settings, runs), built where the app's tabs are. `request_folder`: a
    folder of one request's own (a context manager), whose files are handed to Gradio before it
    goes; `heavy`: the concurrency group of the app's heavy requests, where unpacking and
    inspecting data run, stopped at `time_limit_s`, on a cancel, or when the visitor leaves. Returns
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
            first_models = service.starting.offered("pix2pix")
            first_start = first_models[0][1] if first_models else ""
            with gr.Row():
                method = gr.Dropdown(choices=list(METHODS), value="pix2pix", label="Method", elem_id="train-method")
                # Custom values pass Gradio (a stale one meets the service's refusal, in place).
                start_from = gr.Dropdown(choices=[(SCRATCH, ""), *first_models], allow_custom_value=True,
                                         value=first_start, label="Start from",
                                         info="a trained model: on a CPU, a run started from one is ahead of one "
                                         "from scratch (docs/app.md)", elem_id="train-start-from")
            preset = gr.Radio(choices=[(label, key) for key, label in PRESETS.items()],
                              value=preset_for(first_start, "quick"), label="Preset", elem_id="train-preset")
            with gr.Row():
                size = gr.Number(value=None, precision=0, elem_id="train-size", label=size_label(
                    default_size(service.starting, "pix2pix", preset_for(first_start, "quick"), first_start)))
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
        runs = runs_section(app, service, request_folder, heavy)

    # ---- events -----------------------------------------------------------------------------
    def pictures_of(report_):
        with request_folder() as folder:
            return [(thumbs.move_resource_to_block_cache(p), c) for p, c in service.thumbnails(report_, folder)]

    heavy_work = stoppable(app, time_limit_s)

    @heavy_work
    @in_place(lambda line: (gr.skip(), f"**Not used:** {line}", [], gr.skip()))
    def on_upload(file, request: gr.Request):
        if file is None:
            return gr.update(), gr.update(), gr.update(), gr.update()
        name, report_ = service.upload(file, Path(file).name)
        return (gr.Dropdown(choices=service.data.datasets(), value=name), f"```text\n{service.describe(report_)}\n```",
                pictures_of(report_), report_.method)

    @heavy_work
    @in_place(lambda line: (f"**Not inspected:** {line}", [], gr.skip()))
    def on_inspect(name, request: gr.Request):
        if not name:
            raise Img2ImgError("choose a data folder, or upload a zip, first")
        report_ = service.inspect(name)
        return f"```text\n{service.describe(report_)}\n```", pictures_of(report_), report_.method

    def values_of(texts):
        return {s.key: t for s, t in zip(settings, texts) if t not in (None, "")}

    def on_method(method_, start_, preset_, request: gr.Request):
        """The trained models this method may start from; the fine-tune preset where there is one."""
        offered = service.starting.offered(method_, user_of(request))
        keys = [k for _, k in offered]
        chosen = start_ if start_ in keys else (keys[0] if keys and preset_ in ("quick", "finetune") else "")
        return gr.Dropdown(choices=[(SCRATCH, ""), *offered], value=chosen), preset_for(chosen, preset_)

    def on_start_from(start_, preset_):
        return preset_for(start_, preset_)

    def on_preset(method_, start_, preset_, request: gr.Request):
        """The quick look starts from scratch; fine-tuning from the first model offered, if none was chosen."""
        if preset_ == "quick":
            return ""
        if preset_ == "finetune" and not start_:
            offered = service.starting.offered(method_, user_of(request))
            return offered[0][1] if offered else gr.skip()
        return gr.skip()

    def on_size_label(method_, preset_, start_, request: gr.Request):
        try:
            return gr.Number(label=size_label(default_size(service.starting, method_, preset_, start_ or "",
                                                           user_of(request))))
        except Img2ImgError:
            return gr.skip()

    def on_settings(request: gr.Request, name, method_, start_, preset_, size_, length_, unit_, *texts):
        if not name:
            return "Choose the data first; the command that the settings make appears here."
        try:
            plan = service.plan(name, method_, preset_, size_, length_, unit_, values_of(texts), start_ or "",
                                user_of(request))
        except Img2ImgError as e:
            return f"**Not valid:** {e}"
        return (f"This run will take {plan.estimate.describe()} (estimated from its settings).\n\nThe same run "
                "from a terminal:\n\n```bash\n" + plan.command(service.runs) + "\n```")

    @in_place(lambda line: (gr.skip(), gr.skip(), f"**Not started:** {line}"))
    def on_start(request: gr.Request, name, method_, start_, preset_, size_, length_, unit_, *texts):
        if not name:
            raise Img2ImgError("choose a data folder, or upload a zip, first")
        plan = service.plan(name, method_, preset_, size_, length_, unit_, values_of(texts), start_ or "",
                            user_of(request))
        started = service.start(plan, user_of(request))
        twins = same_settings(service.list_runs(), started)
        said = f"Started {service.runs.view(started).line()}." + (
            f" The same settings are already queued or training as {', '.join(twins)}: stop one if that was a "
            "second click." if twins else "")
        return gr.Dropdown(choices=run_choices(service), value=started), started, said


    private = {"api_visibility": "private"}
    plan_inputs = [data, method, start_from, preset, size, length, unit, *fields]
    # The command box follows every choice, and each new data report (a folder's change alone did not).
    show_command = {"fn": on_settings, "inputs": plan_inputs, "outputs": command, "show_progress": "hidden", **private}
    upload.upload(on_upload, inputs=upload, outputs=[data, report, thumbs, method], **heavy, **private).then(
        **show_command)
    inspect_button.click(on_inspect, inputs=data, outputs=[report, thumbs, method], **heavy, **private).then(
        **show_command)
    data.input(on_inspect, inputs=data, outputs=[report, thumbs, method], **heavy, **private).then(**show_command)
    method.input(on_method, inputs=[method, start_from, preset], outputs=[start_from, preset], **private)
    start_from.input(on_start_from, inputs=[start_from, preset], outputs=preset, **private)
    preset.input(on_preset, inputs=[method, start_from, preset], outputs=start_from, **private)
    app.load(on_method, inputs=[method, start_from, preset], outputs=[start_from, preset], **private)
    gr.on([method.change, preset.change, start_from.change], on_size_label, inputs=[method, preset, start_from],
          outputs=size, show_progress="hidden", **private)
    gr.on([c.change for c in plan_inputs], **show_command)
    start.click(on_start, inputs=plan_inputs, outputs=[runs.run, runs.remembered, command], **private)
    app.load(lambda: gr.Dropdown(choices=service.data.datasets()), outputs=data, **private)
    return runs.use_in


SCRATCH = "From scratch (random weights)"


def size_label(default: int) -> str:
    return f"Size (px; 0 or blank: {default})"


def preset_for(start_from: str, preset: str) -> str:
    """Fine-tune when starting from a model, the quick look from scratch; other presets stay."""
    if preset not in ("quick", "finetune"):
        return preset
    return "finetune" if start_from else "quick"


def _field(setting):
    """A form field for one setting: blank means the default, as a flag left out."""
    spec = setting.spec
    info = spec.help.replace("%%", "%") + (f" [{setting.used_by}]" if setting.used_by else "") + \
        (f" (default {setting.default_text})" if setting.default_text else "")
    if spec.kind is bool:
        return gr.Dropdown(choices=["", "on", "off"], value="", label=spec.flag, info=info)
    if spec.choices:
        return gr.Dropdown(choices=["", *map(str, spec.choices)], value="", label=spec.flag, info=info)
    return gr.Textbox(value="", placeholder=setting.default_text, label=spec.flag, info=info, max_lines=1)
