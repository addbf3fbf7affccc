"""The package's seams: light inference imports, flags generated from the configs, methods
added through the registry alone."""
import dataclasses
import subprocess
import sys
from dataclasses import dataclass

import pytest
from conftest import TINY_PIX2PIX

from img2img import methods
from img2img.cli import build_parser, main
from img2img.config import DataConfig, ModelConfig, SpeedConfig, TrainConfig, flag_name, setting
from img2img.losses import GAN_MODES
from img2img.methods import METHODS, Pix2Pix
from img2img.methods.pix2pix import Pix2PixConfig
from img2img.models import NORM_LAYERS


def test_importing_inference_loads_no_trainer_data_pipeline_or_metrics():
    code = ("import sys, img2img.translate.translator; heavy = ('img2img.training', 'albumentations', 'cv2', 'pytorch_fid', "
            "'scipy', 'img2img.metrics'); print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def train_option_strings() -> set[str]:
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    return {s for action in train._actions for s in action.option_strings}


def test_every_config_setting_has_a_train_flag():
    options = train_option_strings()
    for cls in (ModelConfig, DataConfig, TrainConfig, SpeedConfig, *(m.Config for m in METHODS.values())):
        for f in dataclasses.fields(cls):
            if f.metadata.get("cli", True):
                assert flag_name(f.name) in options, f"{cls.__name__}.{f.name} has no flag"


def test_flag_choices_come_from_the_registries(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "{" + ",".join(METHODS) + "}" in help_text
    assert "{" + ",".join(NORM_LAYERS) + "}" in help_text
    assert "{" + ",".join(GAN_MODES) + "}" in help_text


@dataclass
class SharpPix2PixConfig(Pix2PixConfig):
    """A variant of pix2pix: its settings and defaults, and one of its own."""

    gan_mode: str = setting("hinge", "adversarial loss", choices=GAN_MODES)
    lambda_l1: float = setting(10.0, "weight of the L1 term")
    lambda_sharp: float = setting(0.0, "a setting only this method has")


class SharpPix2Pix(Pix2Pix):
    Config = SharpPix2PixConfig


def test_a_method_added_to_the_registry_trains_from_the_cli(paired_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "sharp", SharpPix2Pix)
    assert "--lambda-sharp" in train_option_strings()
    out = tmp_path / "run"
    assert main(["train", "--model", "sharp", "--data", str(paired_dir), "--out", str(out), "--max-steps", "1",
                 "--lambda-sharp", "2", *TINY_PIX2PIX]) == 0
    from img2img.checkpoint import checkpoint_config, load_checkpoint

    cfg = checkpoint_config(load_checkpoint(out / "checkpoints" / "latest.pt"))
    assert cfg.method == "sharp" and cfg.method_config == SharpPix2PixConfig(lambda_sharp=2.0)
