"""The app's tests share one folder of models: a tiny trained pix2pix and a broken file."""
import shutil

import pytest
from helpers import TINY_PIX2PIX, make_paired

from img2img.cli import main as cli


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    data = make_paired(root / "data")
    cli(["train", "--data", str(data), "--out", str(root / "run"), "--max-steps", "1", *TINY_PIX2PIX])
    (root / "models").mkdir()
    shutil.copy(root / "run" / "checkpoints" / "latest.pt", root / "models" / "tiny.pt")
    (root / "models" / "broken.pt").write_bytes(b"not a checkpoint")
    return root / "models"
