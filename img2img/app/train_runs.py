"""The Train tab's runs: choose one, watch it (status, losses, validation, samples, log), stop,
resume, delete, download, and use its model in the translator."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd

from ..errors import Img2ImgError
from ..service.training import TrainingService
from .glue import in_place, user_of

# The page asks the run folder for news this often; the training process is not involved.
POLL_S = 2.0


def curves(rows: list[dict], name: str) -> pd.DataFrame:
    """Rows {"step", NAME, "value"} as a frame of typed columns (an untyped empty one would make
    the plot read its values as categories)."""
    return pd.DataFrame({"step": pd.Series([r["step"] for r in rows], dtype="int64"),
                         name: pd.Series([r[name] for r in rows], dtype="str"),
                         "value": pd.Series([r["value"] for r in rows], dtype="float64")})


# The log box keeps its newest line in view: Gradio's autoscroll follows only a box already
# scrolled to its end, and a first tail of 15 lines in 8 opens at the top.
SCROLL_LOG_TO_END = """() => requestAnimationFrame(() => {
    const box = document.querySelector('#train-log textarea');
    if (box) box.scrollTop = box.scrollHeight;
})"""


def plot(frame: pd.DataFrame, name: str, chart: gr.LinePlot | gr.ScatterPlot):
    """A chart's update: hidden while there is nothing to draw, its first step drawn as points (a
    line needs two, and Vega draws nothing for one), and with its legend's names each time (the
    chart keeps the colour scale of the first data it drew, so a first empty frame would leave
    every later line without a colour)."""
    kind = type(chart)
    if frame.empty:
        return kind(visible=False)
    data = chart.postprocess(frame)
    if frame["step"].nunique() < 2:
        data.mark = "point"
    return kind(value=data.model_dump(), visible=True, colors_in_legend=sorted(frame[name].unique()))


def validation_line(evaluations: list[dict]) -> str:
    """The newest validation figures in words: "; val L1 9.9, PSNR 21.5 dB, SSIM 0.648 at step 8"."""
    if not evaluations:
        return ""
    step = evaluations[-1]["step"]
    newest = {r["metric"]: r["value"] for r in evaluations if r["step"] == step}
    words = [f"{name} {newest[key]:.4g}{unit}" for key, name, unit in (
        ("val_l1", "val L1", ""), ("val_psnr", "PSNR", " dB"), ("val_ssim", "SSIM", ""),
        ("fid_AtoB", "FID", ""), ("fid_BtoA", "FID B→A", "")) if key in newest]
    return f"; {', '.join(words)} at step {step}" if words else ""


def run_choices(service: TrainingService) -> list[tuple[str, str]]:
    return [(f"{v.name} ({v.state})", v.name) for v in service.list_runs()]


def runs_section(app: gr.Blocks, service: TrainingService, request_folder, heavy: dict) -> SimpleNamespace:
    """Section 3 of the Train tab, built in place: (run, remembered, use_in): the run menu, the
    browser's memory of it, and `use_in(shelf, model, direction, model_card, directions_for)`,
    which connects "Use in the translator" to the translator's model menu once that exists."""
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
            # Steps are whole; values read best in their own digits (not "10.000000").
            axes = {"x_axis_format": "d", "y_axis_format": "~g"}
            losses = gr.LinePlot(x="step", y="value", color="loss", title="Losses", height=260, visible=False,
                                 elem_id="train-losses", **axes)
            # Points: an evaluation or two is already a chart.
            fid = gr.ScatterPlot(x="step", y="value", color="metric", title="Validation (FID, KID)", height=260,
                                 visible=False, elem_id="train-fid", **axes)
        sample = gr.Image(label="Newest sample grid", type="filepath", interactive=False, elem_id="train-sample")
        log = gr.Textbox(label="End of the log", lines=8, max_lines=8, interactive=False, elem_id="train-log")
        with gr.Row():
            download_pt = gr.Button("Download the model (.pt)", size="sm")
            download_onnx = gr.Button("Download its ONNX export", size="sm")
        download = gr.File(label="Download", height=80, elem_id="train-download")
        remembered = gr.BrowserState(None, storage_key="img2img-train-run")
        timer = gr.Timer(POLL_S)
        seen = gr.State(None)  # the signature of the run folder last drawn
    log.change(None, js=SCROLL_LOG_TO_END, api_visibility="private")


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
        text = v.line() + validation_line(watch.evaluations) + (f"\n\n`{v.command}`" if v.command else "")
        evals = [r for r in watch.evaluations if r["metric"] in ("fid", "kid")]
        loss_frame, eval_frame = curves(watch.losses, "loss"), curves(evals, "metric")
        # The grid is handed over as Gradio's copy: the runs folder itself is never served.
        grid = sample.move_resource_to_block_cache(watch.sample) if watch.sample else None
        heading = "Newest sample grid" + (f", per image: {' | '.join(watch.sample_columns)}" if watch.sample_columns else "")
        return (text, plot(loss_frame, "loss", losses), plot(eval_frame, "metric", fid),
                gr.Image(value=grid, label=heading), watch.log_tail, signature)

    def not_done(line: str, outputs: int = 1):
        """A refused action: its reason in the section's status line, every control as it was."""
        return (f"**Not done:** {line}", *[gr.skip()] * outputs)

    @in_place(not_done)
    def on_stop(name, request: gr.Request):
        service.stop(name, user_of(request))
        return gr.skip(), gr.Dropdown(choices=run_choices(service), value=name)

    @in_place(not_done)
    def on_resume(name, request: gr.Request):
        service.resume(name, user_of(request))
        return gr.skip(), gr.Dropdown(choices=run_choices(service), value=name)

    @in_place(lambda line: not_done(line, 2))
    def on_delete(name, sure, request: gr.Request):
        if not sure:
            raise Img2ImgError("tick 'Yes, delete this run's folder' first")
        service.delete(name, user_of(request))
        return gr.skip(), gr.Dropdown(choices=run_choices(service), value=None), False


    @in_place(not_done)
    def on_download(name, kind, request: gr.Request):
        with request_folder() as folder:
            return gr.skip(), download.move_resource_to_block_cache(service.export(name, kind, folder, user_of(request)))

    def on_download_pt(name, request: gr.Request):
        return on_download(name, "pt", request)

    def on_download_onnx(name, request: gr.Request):
        return on_download(name, "onnx", request)

    def on_load(saved):
        return gr.Dropdown(choices=run_choices(service), value=service.default_run(saved))

    private = {"api_visibility": "private"}
    watched = [status, losses, fid, sample, log, seen]
    run.change(lambda name: on_poll(name, None), inputs=run, outputs=watched, show_progress="hidden", **private)
    run.input(lambda name: name, inputs=run, outputs=remembered, **private)
    def on_tick(name, seen):
        """on_poll, and the run menu's states with it when anything changed: the menu says what
        the status line says."""
        drawn = on_poll(name, seen)
        changed = drawn[-1] is not None and drawn[-1] != seen
        return (*drawn, gr.Dropdown(choices=run_choices(service), value=name) if changed else gr.skip())

    timer.tick(on_tick, inputs=[run, seen], outputs=[*watched, run], show_progress="hidden", **private)
    refresh.click(lambda name: gr.Dropdown(choices=run_choices(service), value=name), inputs=run, outputs=run,
                  **private)
    stop.click(on_stop, inputs=run, outputs=[status, run], **private)
    resume.click(on_resume, inputs=run, outputs=[status, run], **private)
    delete.click(on_delete, inputs=[run, confirm], outputs=[status, run, confirm], **private)
    download_pt.click(on_download_pt, inputs=run, outputs=[status, download], **heavy, **private)
    download_onnx.click(on_download_onnx, inputs=run, outputs=[status, download], **heavy, **private)
    app.load(on_load, inputs=remembered, outputs=run, **private)

    def use_in(shelf, model: gr.Dropdown, direction: gr.Radio, model_card: gr.Markdown, directions_for,
               prepare) -> None:
        """`prepare(key)`: load the model in the background (its precision chosen) before its first use."""
        @in_place(lambda line: not_done(line, 3))
        def on_use(name, request: gr.Request):
            path, facts = service.model_of(name, user_of(request))
            info = shelf.add_checkpoint(path, f"run {name}", facts)
            key = shelf.key(info)
            radio, card = directions_for(key)
            prepare(key)
            gr.Info(f"{name} is now in the model menu: translate with it in the Image tab.")
            return (f"**{name}** is in the translator's model menu. Preparing it for this machine (on a CPU: its ONNX "
                    "export, and int8 measured against fp32, about a minute); a translation started before that "
                    "waits for it.", gr.Dropdown(choices=shelf.choices(), value=key), radio, card)

        use.click(on_use, inputs=run, outputs=[status, model, direction, model_card], **private)


    return SimpleNamespace(run=run, remembered=remembered, use_in=use_in)
