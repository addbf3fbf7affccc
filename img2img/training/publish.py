"""`img2img push`: a trained model as a Hugging Face Hub model repo.

The repo holds the translating generator(s) as `model.safetensors` with the typed config as
`config.json` (what `hf://user/name` loads, see img2img.persist.hub), a `README.md` model card in the
Hub's format, the run's newest sample grid, with `onnx=True` the ONNX export, and with
`training_state=True` the whole checkpoint in safetensors and JSON, to resume from. The card's
numbers are the run's own validation rows in metrics.csv; a metric the run did not measure is
left out, never invented.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..data.folders import validation_files
from ..errors import Img2ImgError
from ..methods import METHODS, equivalent_command
from ..persist.checkpoint import (
    checkpoint_config,
    export_safetensors,
    export_training_state,
    is_generators_only,
    load_checkpoint,
    stored_directions,
)
from .run_folder import RunFolder

# metrics.csv columns of validation results, and their model-index names.
CARD_METRICS = {"fid": "FID", "kid": "KID", "val_l1": "L1", "val_psnr": "PSNR", "val_ssim": "SSIM"}


@dataclass
class Validation:
    """The run's validation results at a step: {column: value}, e.g. fid_AtoB, val_l1; and why a
    figure is missing, where the run said (`fid_note`)."""
    step: int
    values: dict[str, float]
    fid_note: str = ""


def validation_results(run: Path, step: int) -> Validation | None:
    """The run's last evaluation row (RunFolder's metrics) at or before `step`."""
    found = None
    for row in RunFolder(run).metrics():
        if row.step > step:
            break
        values = {k: v for k, v in row.values.items() if isinstance(v, float) and _metric(k)}
        if row.kind == "eval" and values:
            found = Validation(row.step, values, str(row.values.get("fid_note", "")))
    return found


def validation_images(cfg: RunConfig) -> int | None:
    """How many input images the run's validation split holds, where its data is still here."""
    files = validation_files(cfg, METHODS[cfg.method].dataset_kind, "A").files
    return len(files) or None


def _metric(column: str) -> bool:
    return column in ("val_l1", "val_psnr", "val_ssim") or (column.startswith(("fid_", "kid_")) and "channels" not in column)


def model_card(cfg: RunConfig, repo: str, directions: list[str], step: int, validation: Validation | None,
               sample: str | None, license_id: str | None, datasets: list[str], val_images: int | None = None,
               trained_on: str = "") -> str:
    """README.md in the Hub's format: YAML metadata (with model-index results where the run
    measured any, on `val_images` validation images where known), then what the model is, the
    model it started from, what it trained on (`trained_on`, the run's status), the command that
    trains it again (its folders named as the data root's), and how to use it."""
    data_name = Path(cfg.data.root).name or "the training data"
    split_name = f"{data_name}, {val_images} validation images" if val_images else data_name
    lines = ["---", "library_name: img2img", "pipeline_tag: image-to-image",
             f"tags: [img2img, {cfg.method}, gan, image-to-image]"]
    if license_id:
        lines.append(f"license: {license_id}")
    if datasets:
        lines.append("datasets: [" + ", ".join(datasets) + "]")
    if validation is not None:
        lines += ["model-index:", f"- name: {repo.split('/')[-1]}", "  results:"]
        for direction in directions:
            metrics = [(CARD_METRICS[key], value) for column, value in validation.values.items()
                       for key in CARD_METRICS if column in (key, f"{key}_{direction}")]
            if not metrics:
                continue
            lines += ["  - task:", "      type: image-to-image", f"      name: {cfg.data.domain_a if direction == 'AtoB' else cfg.data.domain_b}"
                      f" to {cfg.data.domain_b if direction == 'AtoB' else cfg.data.domain_a}",
                      "    dataset:", f"      name: {split_name}", f"      type: {data_name}", "      split: validation",
                      "    metrics:"]
            lines += [f"    - {{type: {name.lower()}, value: {value:.6g}, name: {name} at step {validation.step}}}"
                      for name, value in metrics]
    lines.append("---")
    size = "x".join(map(str, cfg.data.crop_size))
    a, b = cfg.data.domain_a, cfg.data.domain_b
    way = f"{a} ↔ {b}" if len(directions) == 2 else (f"{a} → {b}" if directions == ["AtoB"] else f"{b} → {a}")
    lines += ["", f"# {repo.split('/')[-1]}", "",
              f"A **{cfg.method}** model trained with img2img {_version()} for {step} steps: {way} on "
              f"{data_name}, at {size} px.", "",
              f"- Generator: `{cfg.model.netG}`, {cfg.model.ngf} filters, {cfg.model.norm} norm; "
              f"translates {' and '.join(directions)}.",
              *([f"- Translates in 1 to {steps} steps of its Schrödinger bridge (trained with {steps}; all of them "
                 "by default): `--steps N` and `--seed S` on `img2img translate`."]
                if (steps := METHODS[cfg.method].translation_steps(cfg.method_config)) else []),
              f"- Pixels: {cfg.model.in_channels} channel(s) {cfg.model.in_dtype} in, "
              f"{cfg.model.out_channels} channel(s) {cfg.model.out_dtype} out.",
              *([f"- Started from the trained model `{Path(cfg.train.init_from).name}` (`--init-from`), not from "
                 "random weights."] if cfg.train.init_from else []),
              f"- Trained on: {trained_on or (cfg.train.device if cfg.train.device != 'auto' else 'not recorded')}.",
              "- Every setting of the run is in `config.json`, which rebuilds the model with no pickle. A command "
              "that trains it again (the settings that differ from the method's defaults; its folders named "
              "from the data's parent folder):", "", "```bash", retrain_command(cfg), "```"]
    if validation is None:
        lines += ["", "The run recorded no validation metrics, so this card states none."]
    else:
        lines += ["", f"Validation at step {validation.step} (the run's own metrics.csv): "
                  + ", ".join(f"{k} {v:.4g}" for k, v in validation.values.items()) + "."]
        if validation.fid_note:
            lines += ["", f"FID and KID: {validation.fid_note}."]
    if sample:
        lines += ["", f"![samples: input, output, target]({sample})"]
    lines += ["", "## Use it", "", "```bash", "pip install img2img",
              f"img2img translate --checkpoint hf://{repo} photos/ out/", "```", "", "```python",
              "from img2img.translate.translator import Translator", "",
              f'translator = Translator.from_pretrained("{repo}")',
              'translator.translate("photo.jpg").save("translated.png")', "```", "",
              f"In the app: `python app.py --checkpoints hf://{repo}`.", ""]
    return "\n".join(lines)


def retrain_command(cfg: RunConfig) -> str:
    """The command that trains the model again, with no server's paths in it: folders named from
    the data folder's parent (`--data maps`), a starting model by its file's name."""
    root = Path(cfg.data.root)
    command = equivalent_command(cfg)
    if cfg.train.init_from:
        command = command.replace(cfg.train.init_from, Path(cfg.train.init_from).name)
    return command.replace(f"{root.parent}/", "") if root.is_absolute() else command


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("img2img")
    except PackageNotFoundError:
        return "(from source)"


def stage(checkpoint: Path | str, folder: Path, repo: str, onnx: bool = False, license_id: str | None = None,
          datasets: list[str] | None = None, training_state: bool = False) -> list[Path]:
    """Everything the repo will hold, written into `folder`: the card is generated, unless the
    checkpoint has its own in the Hub's format beside it."""
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint, mmap=True)
    cfg, directions = checkpoint_config(state), stored_directions(state)
    step = int(state.get("progress", {}).get("step", 0))
    export_safetensors(checkpoint, folder)
    if training_state:
        if is_generators_only(state):
            raise Img2ImgError(f"{checkpoint}: an export or snapshot holds no training state; push a run's checkpoint")
        export_training_state(checkpoint, folder)
    own_card = checkpoint.parent / "README.md"
    if own_card.is_file() and own_card.read_text(encoding="utf-8").startswith("---\n"):
        # A model with its own card in the Hub's format (the bundled one): published as it is,
        # with the sample images it shows.
        shutil.copyfile(own_card, folder / "README.md")
        if (checkpoint.parent / "samples").is_dir():
            shutil.copytree(checkpoint.parent / "samples", folder / "samples")
        if onnx:
            from ..translate.onnx_graph import export_checkpoint

            export_checkpoint(checkpoint, folder / "model.onnx")
        return sorted(folder.iterdir())
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    samples = sorted((run / "samples").glob("*.png")) + sorted((run / "samples").glob("*.jpg"))
    sample = None
    if samples:
        sample = "sample" + samples[-1].suffix
        shutil.copyfile(samples[-1], folder / sample)
    if onnx:
        from ..translate.onnx_graph import export_checkpoint

        export_checkpoint(checkpoint, folder / "model.onnx")
    status = RunFolder(run).status()
    card = model_card(cfg, repo, directions, step, validation_results(run, step), sample, license_id, datasets or [],
                      validation_images(cfg), status.device if status is not None else "")
    (folder / "README.md").write_text(card)
    return sorted(folder.iterdir())


def push(checkpoint: Path | str, repo: str, private: bool = False, revision: str | None = None,
         token: str | None = None, onnx: bool = False, license_id: str | None = None,
         datasets: list[str] | None = None, training_state: bool = False) -> str:
    """Creates the repo if needed (and the branch `revision`), uploads the staged files in one
    commit, and returns the commit's URL. The token: `token`, else HF_TOKEN or the login cache."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if repo.count("/") != 1 or not all(repo.split("/")):
        raise Img2ImgError(f"--repo {repo}: a Hub repo is USER/NAME")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT"), token=token)
    with tempfile.TemporaryDirectory(prefix="img2img_push_") as work:
        folder = Path(work)
        stage(checkpoint, folder, repo, onnx, license_id, datasets, training_state)
        try:
            api.create_repo(repo, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo, branch=revision, exist_ok=True)
            info = api.upload_folder(repo_id=repo, folder_path=folder, revision=revision,
                                     commit_message=f"img2img push of {Path(checkpoint).name}")
        except (HfHubHTTPError, OSError) as e:
            raise Img2ImgError(f"--repo {repo}: the push failed ({str(e).splitlines()[0][:200]})") from None
    return info.commit_url
