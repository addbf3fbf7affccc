"""The example method in docs/ is one file plus one registry line: it trains from the CLI with
its own flag, resumes, and its checkpoint translates."""
import importlib.util
import sys

import numpy as np
import pytest
from helpers import ROOT, TINY_PIX2PIX

from img2img import methods
from img2img.cli import main
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.translate.translator import Translator


def load_example(monkeypatch):
    """docs/example_method.py as the module img2img.methods.edge_pix2pix, as if saved there."""
    spec = importlib.util.spec_from_file_location("img2img.methods.edge_pix2pix", ROOT / "docs" / "example_method.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_example_method_trains_from_the_cli_with_its_own_flag(paired_dir, tmp_path, monkeypatch, capsys):
    example = load_example(monkeypatch)
    monkeypatch.setitem(methods.METHODS, "edge-pix2pix", example.SPEC)  # the one line
    out = tmp_path / "run"
    flags = ["--model", "edge-pix2pix", "--data", str(paired_dir), "--out", str(out), "--lambda-edge", "5",
             *TINY_PIX2PIX]
    assert main(["train", *flags, "--max-steps", "2"]) == 0
    assert main(["train", "--resume", "auto", "--out", str(out), "--max-steps", "3", "--num-workers", "0"]) == 0
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    cfg = checkpoint_config(state)
    assert cfg.method == "edge-pix2pix" and cfg.method_config.lambda_edge == 5.0
    assert state["progress"]["step"] == 3
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "G_edge" in header and "D_real" in header
    result = Translator.from_checkpoint(out / "checkpoints" / "latest.pt", device="cpu").translate_pixels(
        np.zeros((32, 32, 3), np.uint8))
    assert result.shape == (32, 32, 3)
