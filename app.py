"""Gradio app over img2img's Translator.

    python app.py [--checkpoints DIR] [--examples DIR] [--host 127.0.0.1] [--port 7860] [--share]
"""
from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import gradio as gr
import numpy as np
from PIL import Image

from img2img.errors import Img2ImgError
from img2img.io.pixel_format import resize_pixels
from img2img.io.readers import DEFAULT_MAX_PIXELS, is_volume_file, list_images, read_image, read_volume
from img2img.io.writers import output_suffix, with_suffix, write_image
from img2img.translate.batch import translate_volume
from img2img.translate.catalog import ModelInfo, TranslatorCache, discover_checkpoints, model_card_examples
from img2img.translate.pretrained import PRETRAINED, PretrainedModel, download_pretrained
from img2img.translate.translator import to_pil
from img2img.translate.video import DEFAULT_TEMPORAL_STATISTICS, translate_video

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

# Requests translated at once; more wait in the queue (each has its own result either way).
CONCURRENT_REQUESTS = 4
# Live tab: webcam frames are sent every LIVE_INTERVAL_S and scaled to LIVE_SIDE px (longer side)
# before translation, so that a CPU keeps up; a stream stops after LIVE_TIME_LIMIT_S.
LIVE_SIDE = 256
LIVE_INTERVAL_S = 0.05
LIVE_TIME_LIMIT_S = 600
# What the file upload takes: images of any bit depth and channel count, arrays, scans.
FILE_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".npy", ".dcm", ".nii", ".gz"]


def remove_stale_folders(parent: Path, pattern: str, max_age_s: float) -> None:
    """Batch results are copied into Gradio's cache when a request returns, so older request
    folders are no longer read; ones younger than `max_age_s` may belong to a running request."""
    now = time.time()
    for folder in parent.glob(pattern):
        if now - folder.stat().st_mtime > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)


class ModelShelf:
    """The models the app offers: the checkpoints in its folder, listed again when one is added."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        models, skipped = discover_checkpoints(self.folder)
        with self._lock:
            self.models, self.skipped = models, skipped
            self.by_key: dict[str, ModelInfo] = {str(m.path): m for m in models}

    def choices(self) -> list[tuple[str, str]]:
        return [(m.label, str(m.path)) for m in self.models]

    def find(self, key: str) -> ModelInfo | None:
        return self.by_key.get(key) or next((m for m in self.models if key in (m.label, m.name, m.path.name)), None)


def published_button_label(entry: PretrainedModel, added: bool) -> str:
    return f"✓ {entry.label}, added" if added else f"{entry.label} · {entry.method} · {entry.approximate_mb} MB"


def build_app(checkpoint_dir: Path | str = "checkpoints", examples_dir: Path | str | None = None,
              device: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS, published_url: str | None = None) -> gr.Blocks:
    """`published_url`: where the published models are fetched, a template with {name} (default:
    each model's own URL, the authors' server)."""
    checkpoint_dir = Path(checkpoint_dir)
    # Every file the app writes (examples, batch results) lives here; the folder is removed
    # when the app is garbage-collected or the process exits. Gradio copies outputs into its
    # own cache, which `delete_cache` empties.
    workdir = tempfile.TemporaryDirectory(prefix="img2img_app_")
    work = Path(workdir.name)
    shelf = ModelShelf(checkpoint_dir)
    models = shelf.models
    cache = TranslatorCache(device)
    choices = shelf.choices()
    default_model = choices[0][1] if choices else None

    def resolve(model: str | None) -> ModelInfo:
        if not shelf.models:
            raise gr.Error(f"No model is available: put a checkpoint in {checkpoint_dir}/ or add a published one "
                           "(see the page).")
        key = model or default_model
        info = shelf.find(key)
        if info is None:
            raise gr.Error(f"Unknown model {key!r}; choose one of: {', '.join(m.name for m in shelf.models)}")
        return info

    def check_direction(info: ModelInfo, direction: str) -> None:
        if direction not in info.directions:
            raise gr.Error(f"{info.name} translates {' and '.join(info.directions)} only, not {direction}.")

    def run_pixels(path: str, info: ModelInfo, direction: str):
        """(input pixels, output pixels, translator, a line saying what made it) of an image file
        of any format the readers know, converted to the model's input as needed."""
        check_direction(info, direction)
        translator = cache.get(info.path)
        pixels = translator.pixels_of(read_image(path, max_pixels=max_pixels).array, direction)
        height, width = pixels.shape[:2]
        tiling = translator.tiling_for(width, height)
        start = time.perf_counter()
        result = translator.translate_pixels(pixels, direction=direction)
        seconds = time.perf_counter() - start
        how = f"in {tiling.describe()}" if tiling else "whole"
        details = (f"**{info.name}**, {info.direction_label(direction)} ({info.details}); "
                   f"{width}×{height} px {how}, {translator.engine} on {translator.device}; {seconds:.2f} s")
        return pixels, result, translator, details

    def run(image_path: str, info: ModelInfo, direction: str) -> tuple[Image.Image, str]:
        """The translation as a picture (the output itself for 8-bit models, else its preview)
        and a line saying what made it."""
        _, result, translator, details = run_pixels(image_path, info, direction)
        return to_pil(result, translator.formats(direction).target), details

    def translate(image: str | None, model: str | None = default_model, direction: str = "AtoB"):
        """The translation (a PNG file) and what made it."""
        if image is None:
            raise gr.Error("Upload an image, or take one with the webcam, first.")
        try:
            result, details = run(image, resolve(model), direction)
        except Img2ImgError as e:
            raise gr.Error(str(e).replace(str(Path(image).parent) + "/", "")) from None
        # Returned as a file of its own: Gradio writes returned PIL images to a path named by
        # their content, and rewrote it while another request for the same picture was still
        # downloading it (truncated responses under concurrent load); a file it copies once,
        # atomically.
        remove_stale_folders(work, "result_*", max_age_s=600)
        out = Path(tempfile.mkdtemp(prefix="result_", dir=work)) / "translated.png"
        result.save(out, format="PNG")
        return str(out), details

    def translate_video_file(video: str | None, model: str | None = default_model, direction: str = "AtoB",
                             temporal_statistics: float = DEFAULT_TEMPORAL_STATISTICS, progress=gr.Progress()):
        """A video file in, the translated MP4 (H.264, its sound kept) and a line on what made it."""
        if video is None:
            raise gr.Error("Upload a video first.")
        info = resolve(model)
        check_direction(info, direction)
        translator = cache.get(info.path)
        remove_stale_folders(work, "video_*", max_age_s=3600)
        out = Path(tempfile.mkdtemp(prefix="video_", dir=work)) / f"{Path(video).stem}_translated.mp4"

        def report(done: int, total: int | None) -> None:
            progress(done / total if total else None, desc=f"{done}{f' of {total}' if total else ''} frames")

        try:
            result = translate_video(translator, video, out, direction=direction, show_bar=False,
                                     temporal_statistics=int(temporal_statistics), progress=report)
        except Img2ImgError as e:
            raise gr.Error(str(e).replace(str(Path(video).parent) + "/", "")) from None
        summary = result.summary().split(": ", 1)[1]
        return str(out), (f"**{info.name}**, {info.direction_label(direction)} ({info.details}): {summary}, "
                          f"{translator.engine} on {translator.device}")

    def translate_live(frame, model: str | None, direction: str, side: float, times: list[float] | None):
        """One webcam frame, scaled so that its longer side is `side`, translated; with the frames/s
        reached over the last 20 frames of this stream."""
        if frame is None:
            return None, "", times
        info = resolve(model)
        check_direction(info, direction)
        translator = cache.get(info.path)
        height, width = frame.shape[:2]
        scale = min(1.0, side / max(height, width))
        small = resize_pixels(frame, max(1, round(width * scale)), max(1, round(height * scale)))
        result = translator.translate_pixels(small, direction=direction)
        times = [*(times or [])[-19:], time.perf_counter()]
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return (np.asarray(to_pil(result, translator.formats(direction).target).convert("RGB")),
                f"{rate:.1f} frames/s translated, {width}×{height} → {small.shape[1]}×{small.shape[0]} px "
                f"({translator.engine} on {translator.device})", times)

    def translate_many(files: list[str] | None, model: str | None, direction: str, progress=gr.Progress()):
        """Each file translated and written without loss (16-bit PNG, TIFF, .npy, NIfTI as they
        came), all of them in one zip; the gallery shows previews."""
        if not files:
            raise gr.Error("Upload one or more images first.")
        info = resolve(model)
        gallery, problems = [], []
        remove_stale_folders(work, "batch_*", max_age_s=600)
        out_dir = Path(tempfile.mkdtemp(prefix="batch_", dir=work))
        zip_path = out_dir / "translated.zip"
        start = time.perf_counter()
        with zipfile.ZipFile(zip_path, "w") as archive:
            for f in progress.tqdm(files, desc="Translating", unit="image"):
                name = Path(f).name
                try:
                    out, preview = translate_one(f, info, direction, out_dir)
                except (Img2ImgError, gr.Error) as e:
                    problems.append(f"- {name}: {str(e).replace(str(f), name).split(': ', 1)[-1]}")
                    continue
                archive.write(out, out.name)
                gallery.append((str(preview), name))
        status = (f"Translated {len(gallery)} of {len(files)} images with **{info.name}**, "
                  f"{info.direction_label(direction)}, in {time.perf_counter() - start:.1f} s.")
        if problems:
            status += " Skipped:\n" + "\n".join(problems)
        return gallery, str(zip_path), status

    def translate_one(path: str, info: ModelInfo, direction: str, out_dir: Path) -> tuple[Path, Path]:
        """(the lossless output file, its preview PNG) of one uploaded file in `out_dir`."""
        source = Path(path)
        translator = cache.get(info.path)
        target = translator.formats(direction).target
        out = out_dir / with_suffix(source, output_suffix(source, "auto", target.dtype, target.channels)).name
        preview = out_dir / f"{out.name}.preview.png"
        if is_volume_file(source):
            check_direction(info, direction)
            translate_volume(translator, source, out, direction)
            volume, _ = read_volume(out)
            middle = volume.shape[translator.cfg.data.slice_axis % 3] // 2
            result = np.take(volume, middle, axis=translator.cfg.data.slice_axis % 3)
            to_pil(result[..., None] if result.ndim == 2 else result, target).save(preview)
        else:
            _, result, translator, _ = run_pixels(path, info, direction)
            write_image(out, result)
            to_pil(result, target).save(preview)
        return out, preview

    def translate_file(file: str | None, model: str | None = default_model, direction: str = "AtoB"):
        """A scientific image (16-bit, float, multi-band, DICOM, NIfTI): (input preview, output
        preview, the lossless output file, details)."""
        if file is None:
            raise gr.Error("Upload a file first.")
        info = resolve(model)
        remove_stale_folders(work, "file_*", max_age_s=600)
        out_dir = Path(tempfile.mkdtemp(prefix="file_", dir=work))
        try:
            translator = cache.get(info.path)
            formats = translator.formats(direction)
            if is_volume_file(Path(file)):
                out, preview = translate_one(file, info, direction, out_dir)
                volume, _ = read_volume(file)
                axis = translator.cfg.data.slice_axis % 3
                middle = np.take(volume, volume.shape[axis] // 2, axis=axis)
                shown_in = to_pil(translator.pixels_of(middle, direction), formats.source)
                details = f"**{info.name}**, {info.direction_label(direction)}: a volume of {volume.shape[axis]} slices"
                return shown_in, Image.open(preview), str(out), details
            pixels, result, translator, details = run_pixels(file, info, direction)
            out = out_dir / with_suffix(Path(file), output_suffix(Path(file), "same", formats.target.dtype,
                                                                   formats.target.channels)).name
            write_image(out, result)
        except Img2ImgError as e:
            raise gr.Error(str(e).replace(str(Path(file).parent) + "/", "")) from None
        details += f"; output {formats.target.describe()}, written as {out.suffix} without loss"
        return to_pil(pixels, formats.source), to_pil(result, formats.target), str(out), details

    def direction_choices(info: ModelInfo | None) -> list[tuple[str, str]]:
        return [(info.direction_label(d), d) for d in info.directions] if info else [("A → B", "AtoB")]

    def directions_for(model: str | None):
        info = shelf.find(model or "")
        options = direction_choices(info)
        return (gr.Radio(choices=options, value=options[0][1], visible=len(options) > 1),
                info.card() if info else "")

    def add_published(name: str, progress=gr.Progress()):
        """Download and convert a published model, then select it: (model, direction, card,
        status, its button). Offline or on a server error: one line, and nothing else changes."""
        entry = PRETRAINED[name]

        def report(done: int, total: int | None) -> None:
            of = f" of {total / 1e6:.1f}" if total else ""
            progress(done / total if total else None, desc=f"Downloading {entry.label}: {done / 1e6:.1f}{of} MB")

        progress(0, desc=f"Downloading {entry.label}")
        try:
            path = download_pretrained(name, checkpoint_dir, url=published_url.format(name=name) if published_url
                                       else None, progress=report)
        except Img2ImgError as e:
            message = f"Could not add {entry.label}: {e}. The models above still work."
            return gr.update(), gr.update(), gr.update(), message, gr.update()
        shelf.refresh()
        radio, card = directions_for(str(path))
        status = f"Added **{entry.label}** ({entry.method}) to {checkpoint_dir}/ and selected it above."
        return (gr.Dropdown(choices=shelf.choices(), value=str(path)), radio, card, status,
                gr.Button(value=published_button_label(entry, True), interactive=False))

    # Gradio's cached copies of uploads and outputs: checked hourly, removed after a day.
    with gr.Blocks(title="img2img", delete_cache=(3600, 86400)) as app:
        gr.Markdown("# img2img\nImage-to-image translation with pix2pix, CycleGAN and CUT models.")
        if not models:
            gr.Markdown(HOW_TO_GET_A_MODEL.format(folder=checkpoint_dir))
        # The translator first: model, direction, then what to translate.
        with gr.Row():
            model = gr.Dropdown(choices=choices, value=default_model, label="Model", scale=3)
            first = direction_choices(models[0] if models else None)
            direction = gr.Radio(choices=first, value=first[0][1], label="Direction", visible=len(first) > 1)
        with gr.Tab("Image"):
            with gr.Row():
                image_in = gr.Image(type="filepath", label="Input", sources=["upload", "webcam", "clipboard"])
                image_out = gr.Image(type="filepath", format="png", label="Output", buttons=["download"], interactive=False)
            button = gr.Button("Translate", variant="primary")
            details = gr.Markdown(elem_id="translation-details")
            gr.Markdown(f"Upload, paste or take a photo. Images up to {max_pixels / 1e6:g} MP; large ones are "
                        "translated in blended tiles.")
            slider = gr.ImageSlider(type="filepath", format="png", label="Before / after (drag the handle)",
                                    elem_id="before-after")
            # The slider is filled after the translation, in the page's own event: every file an API
            # response carries is another download for each client (the slider's two made /translate
            # 1.5x slower under load, benchmarks/RESULTS.md).
            button.click(translate, inputs=[image_in, model, direction], outputs=[image_out, details],
                         api_name="translate").success(lambda before, after: (before, after), inputs=[image_in, image_out],
                                                       outputs=slider, api_visibility="private")
            if examples_dir and Path(examples_dir).is_dir():
                examples = list_images(Path(examples_dir))
            else:
                examples = model_card_examples(models, work / "examples")
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
                               outputs=[video_out, video_details], api_name="translate_video")
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
                           concurrency_limit=None, time_limit=LIVE_TIME_LIMIT_S, show_progress="hidden",
                           api_visibility="private")
        with gr.Tab("Scientific file"):
            gr.Markdown("16-bit and float images, several bands, CT and MRI (TIFF, PNG, .npy, DICOM, NIfTI): the "
                        "result keeps every bit and comes back as a download; the pictures are previews (the "
                        "stored range as window, one channel as grey).")
            with gr.Row():
                file_in = gr.File(file_types=FILE_TYPES, label="File")
                file_out = gr.File(label="Result, without loss")
            with gr.Row():
                file_in_preview = gr.Image(type="pil", format="png", label="Input preview")
                file_out_preview = gr.Image(type="pil", format="png", label="Output preview")
            file_button = gr.Button("Translate file", variant="primary")
            file_details = gr.Markdown(elem_id="file-details")
            file_button.click(translate_file, inputs=[file_in, model, direction],
                              outputs=[file_in_preview, file_out_preview, file_out, file_details],
                              api_name="translate_file")
        with gr.Tab("Batch"):
            files = gr.File(file_count="multiple", file_types=["image", *FILE_TYPES], label="Images")
            batch_button = gr.Button("Translate all", variant="primary")
            status = gr.Markdown(elem_id="batch-status")
            gallery = gr.Gallery(label="Results", columns=4)
            archive = gr.File(label="All results (zip)")
            batch_button.click(translate_many, inputs=[files, model, direction], outputs=[gallery, archive, status],
                               api_name="translate_batch")
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
                        f"it into `{checkpoint_dir}/` and selects it.")
            published_status = gr.Markdown(elem_id="published-status")
            entries = list(PRETRAINED.values())
            for start in range(0, len(entries), 4):
                with gr.Row():
                    for entry in entries[start:start + 4]:
                        added = (checkpoint_dir / entry.file_name).is_file()
                        published_button = gr.Button(published_button_label(entry, added), size="sm",
                                                     interactive=not added)
                        published_button.click(functools.partial(add_published, entry.name), outputs=[
                            model, direction, model_card, published_status, published_button],
                            api_visibility="private")
    app.queue(default_concurrency_limit=CONCURRENT_REQUESTS)
    app.workdir = workdir  # its lifetime is the app's
    # Loading a model (and, on the CPU, exporting it to ONNX once) takes seconds: `main` does
    # it for the default model while the server starts, rather than in the first request.
    app.preload = lambda: cache.get(default_model) if default_model else None
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="img2img web app")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder searched for *.pt models")
    parser.add_argument("--examples", help="folder of example input images (default: from the models' cards)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio link")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse larger uploads (default {DEFAULT_MAX_PIXELS / 1e6:g} MP)")
    parser.add_argument("--published-url", help="fetch published models from this URL template with {name} "
                        "(default: the authors' server)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = build_app(args.checkpoints, args.examples, args.device, max_pixels=args.max_pixels,
                    published_url=args.published_url)
    threading.Thread(target=app.preload, daemon=True).start()
    app.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
