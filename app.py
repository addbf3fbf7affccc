"""Gradio app over img2img's Translator: the page only (components, layout, events); what each
request does is img2img.service.

    python app.py [--checkpoints DIR] [--examples DIR] [--host 127.0.0.1] [--port 7860] [--share]
                  [--auth USER:PASSWORD ... | --auth-file FILE | --allow-anonymous] [limits, see --help]
                  [--allow-training --data-root DIR --runs DIR --max-runs N]

The Train tab is train_tab.py.
"""
from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import gradio as gr  # noqa: E402

from img2img.cancellation import StopSignal  # noqa: E402
from img2img.cli import add_limit_flags, limits_from  # noqa: E402
from img2img.errors import Img2ImgError  # noqa: E402
from img2img.hub import is_hub_reference  # noqa: E402
from img2img.io.limits import DEFAULT_LIMITS, Limits  # noqa: E402
from img2img.service import translation  # noqa: E402
from img2img.service.datasets import UploadLimits  # noqa: E402
from img2img.service.serving import ServingSettings, exposure_problem, is_loopback, parse_auth, run_stoppable  # noqa: E402
from img2img.service.training import TrainingService  # noqa: E402
from img2img.translate.precision import PRECISIONS  # noqa: E402
from img2img.translate.pretrained import PRETRAINED  # noqa: E402
from img2img.translate.video import DEFAULT_TEMPORAL_STATISTICS  # noqa: E402
from train_tab import shown_on_page, train_tab, training_api  # noqa: E402

# Heavy requests share one concurrency group, live streams another.
HEAVY, LIVE = "heavy", "live"
# Live tab: webcam frames are sent every LIVE_INTERVAL_S and scaled to LIVE_SIDE px (longer side)
# before translation, so that a CPU keeps up; a stream stops after LIVE_TIME_LIMIT_S.
LIVE_SIDE = 256
LIVE_INTERVAL_S = 0.05
LIVE_TIME_LIMIT_S = 600


def handing_over_uploads(image: gr.Image) -> gr.Image:
    """`image`, made to hand over an uploaded file untouched: gr.Image opens every upload with
    PIL (any format, whatever its name) and converts it, before the app's header check, and a
    file it cannot open got Gradio's generic error rather than the app's one line. (Patched on
    the instance: a subclass of a Gradio component makes Gradio write a .pyi beside app.py.)"""
    convert = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)  # Gradio has checked it lies in its upload folder
        return convert(payload)

    image.preprocess = preprocess
    return image


def client_gone(app: gr.Blocks, request: gr.Request | None) -> bool:
    """Whether Gradio has given up on this request's client: when its event stream closes, the
    queue marks the session's running events not alive (Gradio's queue internals, 6.x)."""
    queue = getattr(app, "_queue", None)
    if request is None or queue is None:
        return False
    events = [e for job in queue.active_jobs if job for e in job if e.session_hash == request.session_hash]
    return bool(events) and not any(e.alive for e in events)


def build_app(checkpoint_dir: Path | str = "checkpoints", examples_dir: Path | str | None = None,
              device: str = "auto", limits: Limits = DEFAULT_LIMITS, published_url: str | None = None,
              serving: ServingSettings = ServingSettings(), allow_downloads: bool = True,
              precision: str = "auto", hub_models: list[str] | tuple[str, ...] = (),
              training: TrainingService | None = None) -> gr.Blocks:
    """`training`: the Train tab's service (None: no tab, and its endpoints refuse);
    `precision`: what the models translate at (img2img.translate.precision); `hub_models`:
    `hf://user/name[@revision]` models offered beside the folder's. `published_url`: where the
    published models are fetched, a template with {name} (default:
    each model's own URL, the authors' server). `allow_downloads`: whether visitors may add
    published models (`main` allows it to logged-in users, or when only this machine can connect)."""
    checkpoint_dir = Path(checkpoint_dir)
    # Examples and each request's own folder live here; the folder is removed when the app is
    # garbage-collected or the process exits (SIGTERM included, see `main`).
    workdir = tempfile.TemporaryDirectory(prefix="img2img_app_")
    service = translation.TranslationService(checkpoint_dir, Path(workdir.name), device, limits, published_url,
                                             serving.max_batch_files, precision, hub_models)
    shelf, models, default_model = service.shelf, service.shelf.models, service.default_model
    choices = shelf.choices()

    async def run_request(work, request: gr.Request | None, hand_over):
        """`work(folder)` in a folder of the request's own, stoppable (cancel, disconnect, time
        limit); `hand_over(result)` gives Gradio its copies of the files before the folder goes."""
        def in_folder():
            with service.request_folder() as folder:
                return hand_over(work(folder))
        try:
            return await run_stoppable(in_folder, StopSignal(serving.time_limit_s), lambda: client_gone(app, request))
        except Img2ImgError as e:
            raise gr.Error(str(e)) from None

    async def translate(image: str | None, model: str | None = default_model, direction: str = "AtoB",
                        request: gr.Request = None):
        """The translation (a PNG file) and what made it."""
        if image is None:
            raise gr.Error("Upload an image, or take one with the webcam, first.")
        return await run_request(lambda folder: service.translate_image(image, model, direction, folder), request,
                                 lambda result: (image_out.move_resource_to_block_cache(result[0]), result[1]))

    async def translate_video_file(video: str | None, model: str | None = default_model, direction: str = "AtoB",
                                   temporal_statistics: float = DEFAULT_TEMPORAL_STATISTICS, progress=gr.Progress(),
                                   request: gr.Request = None):
        """A video file in, the translated MP4 (H.264, its sound kept) and a line on what made it."""
        if video is None:
            raise gr.Error("Upload a video first.")
        return await run_request(
            lambda folder: service.translate_video(video, model, direction, folder, int(temporal_statistics), progress),
            request, lambda result: (video_out.move_resource_to_block_cache(result[0]), result[1]))

    @shown_on_page
    def translate_live(frame, model: str | None, direction: str, side: float, times: list[float] | None):
        if frame is None:
            return None, "", times
        return service.translate_frame(frame, model, direction, side, times)

    async def translate_many(files: list[str] | None, model: str | None, direction: str, progress=gr.Progress(),
                             request: gr.Request = None):
        if not files:
            raise gr.Error("Upload one or more images first.")

        def hand_over(result):
            gallery_items, zip_path, status = result
            return ([(gallery.move_resource_to_block_cache(p), caption) for p, caption in gallery_items],
                    archive.move_resource_to_block_cache(zip_path), status)
        return await run_request(lambda folder: service.translate_many(files, model, direction, folder, progress),
                                 request, hand_over)

    async def translate_file(file: str | None, model: str | None = default_model, direction: str = "AtoB",
                             request: gr.Request = None):
        """A scientific image: (input preview, output preview, the lossless output file, details)."""
        if file is None:
            raise gr.Error("Upload a file first.")

        def hand_over(result):
            return (file_in_preview.move_resource_to_block_cache(result.input_preview),
                    file_out_preview.move_resource_to_block_cache(result.output_preview),
                    file_out.move_resource_to_block_cache(result.path),
                    result.details)
        return await run_request(lambda folder: service.translate_file(file, model, direction, folder), request,
                                 hand_over)

    def directions_for(model: str | None):
        info = shelf.find(model or "")
        options = translation.direction_choices(info)
        return (gr.Radio(choices=options, value=options[0][1], visible=len(options) > 1),
                info.card() if info else "")

    def add_published(name: str, progress=gr.Progress()):
        """Download and convert a published model, then select it: (model, direction, card,
        status, its button). Offline or on a server error: one line, and nothing else changes."""
        entry = PRETRAINED[name]
        if not allow_downloads:
            return (gr.update(), gr.update(), gr.update(), ("Adding models is for logged-in users of this server; "
                    "start it with --auth."), gr.update())
        try:
            path = service.add_published(name, progress)
        except Img2ImgError as e:
            message = f"Could not add {entry.label}: {e}. The models above still work."
            return gr.update(), gr.update(), gr.update(), message, gr.update()
        key = path.name
        radio, card = directions_for(key)
        status = f"Added **{entry.label}** ({entry.method}) to the app's models and selected it above."
        return (gr.Dropdown(choices=shelf.choices(), value=key), radio, card, status,
                gr.Button(value=translation.published_button_label(entry, True), interactive=False))

    def add_from_hub(reference: str, progress=gr.Progress(track_tqdm=True)):
        """Download a model from the Hugging Face Hub (huggingface_hub's progress bars shown) and
        select it: (model, direction, card, status)."""
        if not allow_downloads:
            return (gr.update(), gr.update(), gr.update(), "Adding models is for logged-in users of this server; "
                    "start it with --auth.")
        try:
            info = service.add_hub(reference)
        except Img2ImgError as e:
            return gr.update(), gr.update(), gr.update(), f"Could not add it: {e}. The models above still work."
        key = shelf.key(info)
        radio, card = directions_for(key)
        return (gr.Dropdown(choices=shelf.choices(), value=key), radio, card,
                f"Added **{info.name}** ({info.method}) from the Hub and selected it above.")

    # Gradio's copies of uploads and results: removed `cache_minutes` after they were made.
    retention_s = serving.cache_minutes * 60
    with gr.Blocks(title="img2img", delete_cache=(min(60, retention_s), retention_s), analytics_enabled=False) as app:
        gr.Markdown("# img2img\nImage-to-image translation with pix2pix, CycleGAN and CUT models.")
        if not models:
            gr.Markdown(translation.HOW_TO_GET_A_MODEL.format(folder=checkpoint_dir))
        # The translator first: model, direction, then what to translate.
        with gr.Row():
            model = gr.Dropdown(choices=choices, value=default_model, label="Model", scale=3)
            first = translation.direction_choices(models[0] if models else None)
            direction = gr.Radio(choices=first, value=first[0][1], label="Direction", visible=len(first) > 1)
        with gr.Tab("Image"):
            with gr.Row():
                image_in = handing_over_uploads(gr.Image(type="filepath", image_mode=None, label="Input",
                                                         sources=["upload", "webcam", "clipboard"]))
                image_out = gr.Image(type="filepath", format="png", label="Output", buttons=["download"], interactive=False)
            button = gr.Button("Translate", variant="primary")
            details = gr.Markdown(elem_id="translation-details")
            gr.Markdown(f"Upload, paste or take a photo. Images up to {limits.max_pixels / 1e6:g} MP; large ones are "
                        "translated in blended tiles.")
            slider = gr.ImageSlider(type="filepath", format="png", label="Before / after (drag the handle)",
                                    elem_id="before-after")
            # The slider is filled after the translation, in the page's own event: every file an API
            # response carries is another download for each client (the slider's two made /translate
            # 1.5x slower under load, benchmarks/RESULTS.md).
            button.click(translate, inputs=[image_in, model, direction], outputs=[image_out, details],
                         api_name="translate", concurrency_id=HEAVY, concurrency_limit=serving.max_concurrent).success(lambda before, after: (before, after), inputs=[image_in, image_out],
                                                       outputs=slider, api_visibility="private")
            examples = service.examples(examples_dir)
            if examples:
                gr.Examples([[str(p)] for p in examples[:8]], inputs=image_in)
        with gr.Tab("Video"):
            gr.Markdown("A video file (MP4, MOV, MKV, WebM, AVI), translated frame by frame with its frame rate, "
                        "size and sound kept.")
            with gr.Row():
                video_in = gr.Video(sources=["upload"], label="Video", include_audio=True, elem_id="video-input")
                video_out = gr.Video(label="Translated video", buttons=["download"], elem_id="video-result")
            with gr.Row():
                temporal = gr.Slider(1, 16, value=DEFAULT_TEMPORAL_STATISTICS, step=1,
                                     label="Normalisation statistics pooled over frames (1: each frame its own)")
            video_button = gr.Button("Translate video", variant="primary")
            video_details = gr.Markdown(elem_id="video-details")
            video_button.click(translate_video_file, inputs=[video_in, model, direction, temporal],
                               outputs=[video_out, video_details], api_name="translate_video", concurrency_id=HEAVY,
                               concurrency_limit=serving.max_concurrent)
        with gr.Tab("Live"):
            gr.Markdown("Your webcam, translated as it streams (frames scaled to the side below first, so that a "
                        "CPU keeps up).")
            with gr.Row():
                live_in = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                                   elem_id="live-input")
                live_out = gr.Image(type="numpy", label="Translated", elem_id="live-output")
            live_side = gr.Slider(64, 512, value=LIVE_SIDE, step=32, label="Translate at (pixels, longer side)")
            live_rate = gr.Markdown(elem_id="live-rate")
            live_state = gr.State(None)
            live_in.stream(translate_live, inputs=[live_in, model, direction, live_side, live_state],
                           outputs=[live_out, live_rate, live_state], stream_every=LIVE_INTERVAL_S,
                           concurrency_id=LIVE, concurrency_limit=serving.max_live_streams, time_limit=LIVE_TIME_LIMIT_S, show_progress="hidden",
                           api_visibility="private")
        with gr.Tab("Scientific file"):
            gr.Markdown("16-bit and float images, several bands, CT and MRI (TIFF, PNG, .npy, DICOM, NIfTI): the "
                        "result keeps every bit and comes back as a download; the pictures are previews (the "
                        "stored range as window, one channel as grey).")
            with gr.Row():
                file_in = gr.File(file_types=translation.FILE_TYPES, label="File")
                file_out = gr.File(label="Result, without loss")
            with gr.Row():
                file_in_preview = gr.Image(type="filepath", format="png", label="Input preview")
                file_out_preview = gr.Image(type="filepath", format="png", label="Output preview")
            file_button = gr.Button("Translate file", variant="primary")
            file_details = gr.Markdown(elem_id="file-details")
            file_button.click(translate_file, inputs=[file_in, model, direction],
                              outputs=[file_in_preview, file_out_preview, file_out, file_details],
                              api_name="translate_file", concurrency_id=HEAVY, concurrency_limit=serving.max_concurrent)
        with gr.Tab("Batch"):
            files = gr.File(file_count="multiple", file_types=["image", *translation.FILE_TYPES], label="Images")
            batch_button = gr.Button("Translate all", variant="primary")
            status = gr.Markdown(elem_id="batch-status")
            gallery = gr.Gallery(label="Results", columns=4)
            archive = gr.File(label="All results (zip)")
            batch_button.click(translate_many, inputs=[files, model, direction], outputs=[gallery, archive, status],
                               api_name="translate_batch", concurrency_id=HEAVY,
                               concurrency_limit=serving.max_concurrent)
        if training is not None:
            use_in = train_tab(app, training, service.request_folder,
                               {"concurrency_id": HEAVY, "concurrency_limit": serving.max_concurrent})
        # Below the translator: what the model is, and more models.
        with gr.Accordion("Model card", open=True):
            model_card = gr.Markdown(models[0].card() if models else "", elem_id="model-card")
            if shelf.skipped:
                gr.Markdown("Skipped files: " + "; ".join(shelf.skipped))
        model.change(directions_for, inputs=model, outputs=[direction, model_card], api_visibility="private")
        with gr.Accordion("Published models: one click adds one", open=True, elem_id="published-models"):
            server = urlparse(published_url or next(iter(PRETRAINED.values())).url).netloc
            gr.Markdown(f"The generators published by the pix2pix and CycleGAN authors, from {server}, with the "
                        f"size of their download. A click downloads one (resuming an interrupted download), converts "
                        f"it into the app's models and selects it.")
            published_status = gr.Markdown(elem_id="published-status")
            entries = list(PRETRAINED.values())
            for start in range(0, len(entries), 4):
                with gr.Row():
                    for entry in entries[start:start + 4]:
                        added = service.is_added(entry)
                        published_button = gr.Button(translation.published_button_label(entry, added), size="sm",
                                                     interactive=not added)
                        published_button.click(functools.partial(add_published, entry.name), outputs=[
                            model, direction, model_card, published_status, published_button],
                            api_visibility="private", concurrency_id=HEAVY, concurrency_limit=serving.max_concurrent)
        with gr.Accordion("Load from the Hub", open=False, elem_id="hub-models"):
            gr.Markdown("A model pushed with `img2img push` (model.safetensors and config.json; nothing is "
                        "unpickled): give its repo, optionally with a revision.")
            with gr.Row():
                hub_repo = gr.Textbox(placeholder="user/name or user/name@revision", show_label=False, scale=4)
                hub_button = gr.Button("Load", scale=1)
            hub_status = gr.Markdown(elem_id="hub-status")
            hub_button.click(add_from_hub, inputs=hub_repo, outputs=[model, direction, model_card, hub_status],
                             api_visibility="private", concurrency_id=HEAVY, concurrency_limit=serving.max_concurrent)
        if training is not None:
            use_in(shelf, model, direction, model_card, directions_for)
        training_api(training)
    app.queue(max_size=serving.max_queue, default_concurrency_limit=serving.max_concurrent)
    app.workdir = workdir  # its lifetime is the app's
    # Loading a model (and, on the CPU, exporting it to ONNX once) takes seconds: `main` does
    # it for the default model while the server starts, rather than in the first request.
    app.preload = service.preload
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="img2img web app")
    parser.add_argument("--checkpoints", nargs="+", default=["checkpoints"], metavar="DIR_OR_HF",
                        help="folder searched for *.pt models (default checkpoints), and/or Hugging Face Hub models "
                        "as hf://user/name[@revision]")
    parser.add_argument("--examples", help="folder of example input images (default: from the models' cards)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio link")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto (default): on the CPU, int8 for a model whose int8 copy measured faster within the "
                        "quality gate on its own validation split (docs/speed.md), else fp32; or fp32, bf16, int8")
    parser.add_argument("--published-url", help="fetch published models from this URL template with {name} "
                        "(default: the authors' server)")
    who = parser.add_argument_group("who may use it (--share or a --host other than loopback needs one of these)")
    who.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD", help="a login (repeatable)")
    who.add_argument("--auth-file", help="logins, one USER:PASSWORD per line")
    who.add_argument("--allow-anonymous", action="store_true", help="serve beyond this machine with no login")
    load = parser.add_argument_group("work at once (defaults sized for a 16 GB server: docs/app.md)")
    defaults = ServingSettings()
    for name, help_text in (("max_concurrent", "heavy requests translated at once"),
                            ("max_queue", "requests waiting; the next is told the queue is full"),
                            ("max_live_streams", "webcam streams at once"),
                            ("time_limit_s", "seconds one request may run before it is stopped"),
                            ("max_upload_mb", "MB of one upload, refused while it arrives"),
                            ("max_batch_files", "files in one batch"),
                            ("cache_minutes", "minutes uploads and results are kept")):
        default = getattr(defaults, name)
        flag = "--time-limit" if name == "time_limit_s" else "--" + name.replace("_", "-")
        load.add_argument(flag, dest=name, type=type(default), default=default, metavar="N",
                          help=f"{help_text} (default {default:g})")
    train = parser.add_argument_group("training from the page (off unless --allow-training)")
    train.add_argument("--allow-training", action="store_true",
                       help="add the Train tab and its endpoints; on a shared server, with --auth (docs/app.md)")
    train.add_argument("--data-root", default="datasets", metavar="DIR",
                       help="training data is chosen in this folder, and uploaded zips land in DIR/uploads "
                       "(default datasets)")
    train.add_argument("--runs", default="runs", metavar="DIR", help="run folders (default runs)")
    train.add_argument("--max-runs", type=int, default=1, metavar="N",
                       help="runs that train at once; later ones wait in a queue (default 1)")
    add_limit_flags(parser)
    return parser.parse_args(argv)


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        accounts = parse_auth(args.auth, args.auth_file)
    except Img2ImgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    problem = exposure_problem(args.host, args.share, bool(accounts), args.allow_anonymous)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    serving = ServingSettings(**{name: getattr(args, name) for name in ServingSettings.__dataclass_fields__})
    folders = [c for c in args.checkpoints if not is_hub_reference(c)]
    if len(folders) > 1:
        print(f"error: --checkpoints takes one folder, not {len(folders)}", file=sys.stderr)
        return 2
    hub_models = [c for c in args.checkpoints if is_hub_reference(c)]
    training = None
    if args.allow_training:
        training = TrainingService(args.data_root, args.runs, max(1, args.max_runs), limits_from(args),
                                   UploadLimits(max_upload_mb=serving.max_upload_mb))
        training.runs.start_scheduler()
    app = build_app(folders[0] if folders else "checkpoints", args.examples, args.device, precision=args.precision,
                    limits=limits_from(args), published_url=args.published_url, serving=serving, hub_models=hub_models,
                    allow_downloads=bool(accounts) or (is_loopback(args.host) and not args.share), training=training)
    threading.Thread(target=app.preload, daemon=True).start()
    # SIGTERM (systemd, docker, kill) ends the app as Ctrl-C does: Gradio empties its cache and
    # the work folder is removed on the way out.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        app.launch(server_name=args.host, server_port=args.port, share=args.share, auth=accounts or None,
                   max_file_size=f"{serving.max_upload_mb}mb")
    finally:
        app.close()
        app.workdir.cleanup()
        if training is not None:
            training.runs.close()  # the runs themselves go on; a new server finds them
    return 0


if __name__ == "__main__":
    sys.exit(main())
