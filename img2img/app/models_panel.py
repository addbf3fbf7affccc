"""Below the translator: the chosen model's card, the authors' published models (one click adds
one), and models from the Hugging Face Hub."""
from __future__ import annotations

import functools
from urllib.parse import urlparse

import gradio as gr

from ..errors import Img2ImgError
from ..service import models
from ..service.models import DownloadsNotAllowed
from ..translate.pretrained import PRETRAINED
from .translate_tabs import Page


def directions_for(page: Page, model: str | None):
    """The direction menu and the card of the model chosen."""
    info = page.service.shelf.find(model or "")
    options = models.direction_choices(info)
    return gr.Radio(choices=options, value=options[0][1], visible=len(options) > 1), info.card() if info else ""


def models_panel(page: Page, published_url: str | None) -> gr.Markdown:
    """The model card, published models and the Hub; returns the card."""
    service, shelf = page.service, page.service.shelf
    choose = functools.partial(directions_for, page)

    def add_published(name: str, progress=gr.Progress()):
        """Download and convert a published model, then select it: (model, direction, card,
        status, its button). Offline or on a server error: one line, and nothing else changes."""
        entry = PRETRAINED[name]
        try:
            path = service.add_published(name, progress)
        except DownloadsNotAllowed as e:
            return gr.update(), gr.update(), gr.update(), str(e), gr.update()
        except Img2ImgError as e:
            return gr.update(), gr.update(), gr.update(), f"Could not add {entry.label}: {e}. The models above still " \
                "work.", gr.update()
        radio, card = choose(path.name)
        status = f"Added **{entry.label}** ({entry.method}) to the app's models and selected it above."
        return (gr.Dropdown(choices=shelf.choices(), value=path.name), radio, card, status,
                gr.Button(value=models.published_button_label(entry, True), interactive=False))

    def add_from_hub(reference: str, progress=gr.Progress(track_tqdm=True)):
        """Download a model from the Hugging Face Hub (huggingface_hub's progress bars shown) and
        select it: (model, direction, card, status)."""
        try:
            info = service.add_hub(reference)
        except DownloadsNotAllowed as e:
            return gr.update(), gr.update(), gr.update(), str(e)
        except Img2ImgError as e:
            return gr.update(), gr.update(), gr.update(), f"Could not add it: {e}. The models above still work."
        key = shelf.key(info)
        radio, card = choose(key)
        return (gr.Dropdown(choices=shelf.choices(), value=key), radio, card,
                f"Added **{info.name}** ({info.method}) from the Hub and selected it above.")

    with gr.Accordion("Model card", open=True):
        model_card = gr.Markdown(shelf.models[0].card() if shelf.models else "", elem_id="model-card")
        if shelf.skipped:
            gr.Markdown("Skipped files: " + "; ".join(shelf.skipped))
    page.model.change(choose, inputs=page.model, outputs=[page.direction, model_card], api_visibility="private")
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
                    button = gr.Button(models.published_button_label(entry, added), size="sm",
                                       interactive=not added)
                    button.click(functools.partial(add_published, entry.name),
                                 outputs=[page.model, page.direction, model_card, published_status, button],
                                 api_visibility="private", **page.heavy)
    with gr.Accordion("Load from the Hub", open=False, elem_id="hub-models"):
        gr.Markdown("A model pushed with `img2img push` (model.safetensors and config.json; nothing is "
                    "unpickled): give its repo, optionally with a revision.")
        with gr.Row():
            hub_repo = gr.Textbox(placeholder="user/name or user/name@revision", label="Hugging Face Hub model",
                                  show_label=False, scale=4, elem_id="hub-repo")
            hub_button = gr.Button("Load", scale=1)
        hub_status = gr.Markdown(elem_id="hub-status")
        hub_button.click(add_from_hub, inputs=hub_repo, outputs=[page.model, page.direction, model_card, hub_status],
                         api_visibility="private", **page.heavy)
    return model_card
