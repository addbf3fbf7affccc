"""The translator's tabs: Image, Video, Live, Scientific file and Batch. Each event hands its
work to service.translation.TranslationService in a request folder of its own, stoppable
(cancel, disconnect, time limit)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..cancellation import StopSignal
from ..errors import Img2ImgError
from ..io.limits import Limits
from ..log import logger
from ..service import translation
from ..service.serving import ServingSettings, run_stoppable
from ..translate.video import DEFAULT_TEMPORAL_STATISTICS
from .glue import client_gone, handing_over_uploads, refusal, shown_on_page

# Heavy requests share one concurrency group, live streams another.
HEAVY, LIVE = "heavy", "live"
# Live tab: webcam frames are sent every LIVE_INTERVAL_S and scaled to LIVE_SIDE px (longer side)
# before translation, so that a CPU keeps up; a stream stops after LIVE_TIME_LIMIT_S.
LIVE_SIDE = 256
LIVE_INTERVAL_S = 0.05
LIVE_TIME_LIMIT_S = 600
PREPARING = ("Loading this model, once (on a CPU: its ONNX export, and int8 measured against fp32, about a "
             "minute)…")


@dataclass
class Page:
    """What every part of the page shares: the app, its translation service, the model and
    direction menus, and the concurrency group of heavy requests."""

    app: gr.Blocks
    service: translation.TranslationService
    serving: ServingSettings
    limits: Limits
    model: gr.Dropdown
    direction: gr.Radio
    steps: gr.Slider  # a UNSB model's steps (hidden for other models, which ignore it)

    @property
    def heavy(self) -> dict[str, Any]:
        return {"concurrency_id": HEAVY, "concurrency_limit": self.serving.max_concurrent}

    async def run_request(self, work, request: gr.Request | None, hand_over):
        """`work(folder)` in a folder of the request's own, stoppable; `hand_over(result)` gives
        Gradio its copies of the files before the folder goes."""
        def in_folder():
            with self.service.request_folder() as folder:
                return hand_over(work(folder))
        try:
            return await run_stoppable(in_folder, StopSignal(self.serving.time_limit_s),
                                       lambda: client_gone(self.app, request))
        except Img2ImgError as e:
            raise refusal(str(e)) from None
        except Exception as e:  # a bug or a library's own error: one line for the visitor and the log
            logger.warning(f"request failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            raise refusal(f"this input could not be translated ({type(e).__name__})") from None


def image_tab(page: Page, examples_dir) -> None:
    service = page.service

    async def translate(image: str | None, model: str | None = service.default_model, direction: str = "AtoB",
                        steps: float | None = None, progress=gr.Progress(), request: gr.Request = None):
        """The translation (a PNG file) and what made it."""
        if image is None:
            raise refusal("Upload an image, or take one with the webcam, first.")
        if not service.ready(model):  # a model's first use: its export and int8 measurement take a minute
            progress(None, desc=PREPARING)
        return await page.run_request(lambda folder: service.translate_image(image, model, direction, folder, steps),
                                      request,
                                      lambda result: (image_out.move_resource_to_block_cache(result[0]), result[1]))

    with gr.Tab("Image"):
        with gr.Row():
            image_in = handing_over_uploads(gr.Image(type="filepath", image_mode=None, label="Input",
                                                     sources=["upload", "webcam", "clipboard"]))
            image_out = gr.Image(type="filepath", format="png", label="Output", buttons=["download"], interactive=False)
        button = gr.Button("Translate", variant="primary")
        details = gr.Markdown(elem_id="translation-details")
        gr.Markdown(f"Upload, paste or take a photo. Images up to {page.limits.max_pixels / 1e6:g} MP; large ones are "
                    "translated in blended tiles.")
        slider = gr.ImageSlider(type="filepath", format="png", label="Before / after (drag the handle)",
                                elem_id="before-after")
        # The slider is filled after the translation, in the page's own event: every file an API
        # response carries is another download for each client (the slider's two made /translate
        # 1.5x slower under load, benchmarks/RESULTS.md).
        button.click(translate, inputs=[image_in, page.model, page.direction, page.steps], outputs=[image_out, details],
                     api_name="translate", **page.heavy).success(
            lambda before, after: (before, after), inputs=[image_in, image_out], outputs=slider,
            api_visibility="private")
        # Another model or direction: the old result (and what made it) no longer describes the page.
        gr.on([page.model.change, page.direction.change, page.steps.change], lambda: (None, "", None),
              outputs=[image_out, details, slider],
              show_progress="hidden", api_visibility="private")
        examples = service.examples(examples_dir)
        if examples:
            gr.Examples([[str(p)] for p in examples[:8]], inputs=image_in)


def video_tab(page: Page) -> None:
    service = page.service

    async def translate_video_file(video: str | None, model: str | None = service.default_model,
                                   direction: str = "AtoB", temporal_statistics: float = DEFAULT_TEMPORAL_STATISTICS,
                                   steps: float | None = None, progress=gr.Progress(), request: gr.Request = None):
        """A video file in, the translated MP4 (H.264, its sound kept) and a line on what made it."""
        if video is None:
            raise refusal("Upload a video first.")
        return await page.run_request(
            lambda folder: service.translate_video(video, model, direction, folder, int(temporal_statistics), progress,
                                                   steps),
            request, lambda result: (video_out.move_resource_to_block_cache(result[0]), result[1]))

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
        video_button.click(translate_video_file, inputs=[video_in, page.model, page.direction, temporal, page.steps],
                           outputs=[video_out, video_details], api_name="translate_video", **page.heavy)


def live_tab(page: Page) -> None:
    @shown_on_page
    def translate_live(frame, model: str | None, direction: str, side: float, times: list[float] | None,
                       steps: float | None = None):
        if frame is None:
            return None, "", times
        return page.service.translate_frame(frame, model, direction, side, times, steps)

    with gr.Tab("Live"):
        gr.Markdown("Your webcam, translated as it streams (frames scaled to the side below first, so that a "
                    "CPU keeps up).")
        with gr.Row():
            live_in = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="live-input")
            live_out = gr.Image(type="numpy", label="Translated", elem_id="live-output")
        live_side = gr.Slider(64, 512, value=LIVE_SIDE, step=32, label="Translate at (pixels, longer side)")
        live_rate = gr.Markdown(elem_id="live-rate")
        live_state = gr.State(None)
        live_in.stream(translate_live, inputs=[live_in, page.model, page.direction, live_side, live_state, page.steps],
                       outputs=[live_out, live_rate, live_state], stream_every=LIVE_INTERVAL_S, concurrency_id=LIVE,
                       concurrency_limit=page.serving.max_live_streams, time_limit=LIVE_TIME_LIMIT_S,
                       show_progress="hidden", api_visibility="private")


def file_tab(page: Page) -> None:
    service = page.service

    async def translate_file(file: str | None, model: str | None = service.default_model, direction: str = "AtoB",
                             steps: float | None = None, request: gr.Request = None):
        """A scientific image: (input preview, output preview, the lossless output file, details)."""
        if file is None:
            raise refusal("Upload a file first.")

        def hand_over(result):
            return (file_in_preview.move_resource_to_block_cache(result.input_preview),
                    file_out_preview.move_resource_to_block_cache(result.output_preview),
                    file_out.move_resource_to_block_cache(result.path),
                    result.details)
        return await page.run_request(lambda folder: service.translate_file(file, model, direction, folder, steps),
                                      request, hand_over)

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
        file_button.click(translate_file, inputs=[file_in, page.model, page.direction, page.steps],
                          outputs=[file_in_preview, file_out_preview, file_out, file_details],
                          api_name="translate_file", **page.heavy)


def batch_tab(page: Page) -> None:
    async def translate_many(files: list[str] | None, model: str | None, direction: str, steps: float | None = None,
                             progress=gr.Progress(), request: gr.Request = None):
        if not files:
            raise refusal("Upload one or more images first.")

        def hand_over(result):
            gallery_items, zip_path, status = result
            return ([(gallery.move_resource_to_block_cache(p), caption) for p, caption in gallery_items],
                    archive.move_resource_to_block_cache(zip_path), status)
        return await page.run_request(
            lambda folder: page.service.translate_many(files, model, direction, folder, progress, steps), request,
            hand_over)

    with gr.Tab("Batch"):
        files = gr.File(file_count="multiple", file_types=["image", *translation.FILE_TYPES], label="Images")
        batch_button = gr.Button("Translate all", variant="primary")
        status = gr.Markdown(elem_id="batch-status")
        gallery = gr.Gallery(label="Results", columns=4)
        archive = gr.File(label="All results (zip)")
        batch_button.click(translate_many, inputs=[files, page.model, page.direction, page.steps],
                           outputs=[gallery, archive, status], api_name="translate_batch", **page.heavy)
