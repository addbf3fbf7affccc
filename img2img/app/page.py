"""The page: the translator (model, direction, its tabs), the Train tab when training is allowed,
and the models panel, over img2img.service. What each request does is the service's."""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..io.limits import DEFAULT_LIMITS, Limits
from ..service import models, translation
from ..service.serving import ServingSettings
from ..service.training import TrainingService
from .models_panel import directions_for, models_panel
from .train_api import training_api
from .train_tab import train_tab
from .translate_tabs import Page, batch_tab, file_tab, image_tab, live_tab, video_tab


def steps_slider(info: models.ModelInfo | None) -> dict:
    """The steps slider's range and visibility for a model: a UNSB model's trained steps, all of
    them at first; hidden for other models."""
    top = info.steps if info else 0
    return {"minimum": 1, "maximum": max(top, 2), "value": max(top, 1), "visible": bool(top)}


def build_app(checkpoint_dir: Path | str = "checkpoints", examples_dir: Path | str | None = None,
              device: str = "auto", limits: Limits = DEFAULT_LIMITS, published_url: str | None = None,
              serving: ServingSettings = ServingSettings(), allow_downloads: bool = True,
              precision: str = "auto", hub_models: list[str] | tuple[str, ...] = (),
              training: TrainingService | None = None) -> gr.Blocks:
    """`training`: the Train tab's service (None: no tab, and its endpoints refuse);
    `precision`: what the models translate at (img2img.translate.precision); `hub_models`:
    `hf://user/name[@revision]` models offered beside the folder's. `published_url`: where the
    published models are fetched, a template with {name} (default: each model's own URL, the
    authors' server). `allow_downloads`: whether visitors may add models
    (service.serving.downloads_allowed)."""
    checkpoint_dir = Path(checkpoint_dir)
    # Examples and each request's own folder live here; the folder is removed when the app is
    # garbage-collected or the process exits (SIGTERM included, see `main`).
    workdir = tempfile.TemporaryDirectory(prefix="img2img_app_")
    service = translation.TranslationService(checkpoint_dir, Path(workdir.name), device, limits, published_url,
                                             serving.max_batch_files, precision, hub_models, allow_downloads,
                                             serving.max_download_mb)
    offered = service.shelf.models
    # Gradio's copies of uploads and results: removed `cache_minutes` after they were made.
    retention_s = serving.cache_minutes * 60
    with gr.Blocks(title="img2img", delete_cache=(min(60, retention_s), retention_s), analytics_enabled=False) as app:
        gr.Markdown("# img2img\nImage-to-image translation with pix2pix, CycleGAN, CUT and UNSB models.")
        if not offered:
            gr.Markdown(models.HOW_TO_GET_A_MODEL.format(folder=checkpoint_dir))
        # The translator first: model, direction, then what to translate.
        with gr.Row():
            model = gr.Dropdown(choices=service.shelf.choices(), value=service.default_model, label="Model", scale=3)
            first = models.direction_choices(offered[0] if offered else None)
            direction = gr.Radio(choices=first, value=first[0][1], label="Direction", visible=len(first) > 1)
            steps = gr.Slider(**steps_slider(offered[0] if offered else None), step=1, elem_id="steps",
                              label="Steps of the bridge (UNSB: fewer are faster, more refine)")
        page = Page(app, service, serving, limits, model, direction, steps)
        model.change(lambda key: gr.Slider(**steps_slider(service.shelf.find(key or ""))), inputs=model, outputs=steps,
                     show_progress="hidden", api_visibility="private")
        image_tab(page, examples_dir)
        video_tab(page)
        live_tab(page)
        file_tab(page)
        batch_tab(page)
        use_in = None
        if training is not None:
            use_in = train_tab(app, training, service.request_folder, page.heavy, serving.time_limit_s)
        # Below the translator: what the model is, and more models.
        model_card = models_panel(page, published_url)
        if use_in is not None:
            use_in(service.shelf, model, direction, model_card, lambda key: directions_for(page, key), service.prepare)
        training_api(app, training, page.heavy, serving.time_limit_s)
    app.queue(max_size=serving.max_queue, default_concurrency_limit=serving.max_concurrent)
    app.workdir = workdir  # its lifetime is the app's
    # Loading a model (and, on the CPU, exporting it to ONNX once) takes seconds: `main` does
    # it for the default model while the server starts, rather than in the first request.
    app.preload = service.preload
    return app
