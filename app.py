"""Gradio app over img2img's Translator.

    python app.py [--checkpoints DIR] [--examples DIR] [--host 127.0.0.1] [--port 7860] [--share]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import gradio as gr
from PIL import Image

from img2img.catalog import ModelInfo, TranslatorCache, discover_checkpoints, model_card_examples
from img2img.data.images import DEFAULT_MAX_PIXELS, list_images, load_rgb
from img2img.errors import Img2ImgError

HOW_TO_GET_A_MODEL = """
### No model yet
No checkpoint was found in `{folder}`. To get one:

- run `img2img demo --install-to {folder}`, which trains a small demo model in about two
  minutes and puts it there, or
- train your own: `img2img train --model pix2pix --data DATASET --out runs/mine`, then copy
  `runs/mine/checkpoints/latest.pt` into `{folder}/` (or start the app with
  `--checkpoints runs/mine/checkpoints`).

Then restart the app.
"""


def remove_stale_folders(parent: Path, pattern: str, max_age_s: float) -> None:
    """Batch results are copied into Gradio's cache when a request returns, so older request
    folders are no longer read; ones younger than `max_age_s` may belong to a running request."""
    now = time.time()
    for folder in parent.glob(pattern):
        if now - folder.stat().st_mtime > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)


def build_app(checkpoint_dir: Path | str = "checkpoints", examples_dir: Path | str | None = None,
              device: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS) -> gr.Blocks:
    checkpoint_dir = Path(checkpoint_dir)
    # Every file the app writes (examples, batch results) lives here; the folder is removed
    # when the app is garbage-collected or the process exits. Gradio copies outputs into its
    # own cache, which `delete_cache` empties.
    workdir = tempfile.TemporaryDirectory(prefix="img2img_app_")
    work = Path(workdir.name)
    models, skipped = discover_checkpoints(checkpoint_dir)
    by_key: dict[str, ModelInfo] = {str(m.path): m for m in models}
    cache = TranslatorCache(device)
    choices = [(m.label, str(m.path)) for m in models]
    default_model = choices[0][1] if choices else None

    def resolve(model: str | None) -> ModelInfo:
        if not models:
            raise gr.Error(f"No model is available: put a checkpoint in {checkpoint_dir}/ (see the page).")
        key = model or default_model
        info = by_key.get(key) or next((m for m in models if m.label == key or m.path.name == key), None)
        if info is None:
            raise gr.Error(f"Unknown model {key!r}; choose one of: {', '.join(m.path.name for m in models)}")
        return info

    def run(image_path: str, info: ModelInfo, direction: str) -> Image.Image:
        if direction not in info.directions:
            raise gr.Error(f"{info.path.name} translates {' and '.join(info.directions)} only, not {direction}.")
        image = load_rgb(image_path, max_pixels=max_pixels)
        return cache.get(info.path).translate(image, direction=direction)

    def translate(image: str | None, model: str | None = default_model, direction: str = "AtoB") -> Image.Image:
        if image is None:
            raise gr.Error("Upload an image first.")
        try:
            return run(image, resolve(model), direction)
        except Img2ImgError as e:
            raise gr.Error(str(e).replace(str(Path(image).parent) + "/", "")) from None

    def translate_many(files: list[str] | None, model: str | None, direction: str):
        if not files:
            raise gr.Error("Upload one or more images first.")
        info = resolve(model)
        gallery, problems = [], []
        remove_stale_folders(work, "batch_*", max_age_s=600)
        out_dir = Path(tempfile.mkdtemp(prefix="batch_", dir=work))
        zip_path = out_dir / "translated.zip"
        with zipfile.ZipFile(zip_path, "w") as archive:
            for f in files:
                name = Path(f).name
                try:
                    result = run(f, info, direction)
                except (Img2ImgError, gr.Error) as e:
                    problems.append(f"- {name}: {str(e).split(': ', 1)[-1]}")
                    continue
                out = out_dir / f"{Path(name).stem}.png"
                result.save(out)
                archive.write(out, out.name)
                gallery.append((str(out), name))
        status = f"Translated {len(gallery)} of {len(files)} images."
        if problems:
            status += " Skipped:\n" + "\n".join(problems)
        return gallery, str(zip_path), status

    def directions_for(model: str | None):
        info = by_key.get(model or "")
        options = list(info.directions) if info else ["AtoB"]
        return gr.Radio(choices=options, value=options[0], visible=len(options) > 1)

    # Gradio's cached copies of uploads and outputs: checked hourly, removed after a day.
    with gr.Blocks(title="img2img", delete_cache=(3600, 86400)) as app:
        gr.Markdown("# img2img\nImage-to-image translation with pix2pix, CycleGAN and CUT models.")
        if not models:
            gr.Markdown(HOW_TO_GET_A_MODEL.format(folder=checkpoint_dir))
        if skipped:
            gr.Markdown("Skipped files: " + "; ".join(skipped))
        with gr.Row():
            model = gr.Dropdown(choices=choices, value=default_model, label="Model", scale=3)
            first = models[0].directions if models else ("AtoB",)
            direction = gr.Radio(choices=list(first), value=first[0], label="Direction", visible=len(first) > 1)
        model.change(directions_for, inputs=model, outputs=direction, api_visibility="private")
        with gr.Tab("Single image"):
            with gr.Row():
                image_in = gr.Image(type="filepath", label="Input", sources=["upload", "clipboard"])
                image_out = gr.Image(type="pil", format="png", label="Output", buttons=["download"])
            button = gr.Button("Translate", variant="primary")
            button.click(translate, inputs=[image_in, model, direction], outputs=image_out, api_name="translate")
            if examples_dir and Path(examples_dir).is_dir():
                examples = list_images(Path(examples_dir))
            else:
                examples = model_card_examples(models, work / "examples")
            if examples:
                gr.Examples([[str(p)] for p in examples[:8]], inputs=image_in)
        with gr.Tab("Batch"):
            files = gr.File(file_count="multiple", file_types=["image"], label="Images")
            batch_button = gr.Button("Translate all", variant="primary")
            gallery = gr.Gallery(label="Results", columns=4)
            archive = gr.File(label="All results (zip)")
            status = gr.Markdown()
            batch_button.click(translate_many, inputs=[files, model, direction], outputs=[gallery, archive, status],
                               api_name="translate_batch")
    app.workdir = workdir  # its lifetime is the app's
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="img2img web app")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder searched for *.pt models")
    parser.add_argument("--examples", help="folder of example input images (default: from the models' cards)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio link")
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    build_app(args.checkpoints, args.examples, args.device).launch(
        server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
