"""Shared fixtures: tiny generated datasets, never the shared ones."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_paired, make_unpaired

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX exports made for onnxruntime go to a temporary cache, not the user's."""
    import os

    os.environ["IMG2IMG_CACHE"] = str(tmp_path_factory.mktemp("img2img_cache"))








@pytest.fixture
def paired_dir(tmp_path: Path) -> Path:
    return make_paired(tmp_path / "paired")


@pytest.fixture
def unpaired_dir(tmp_path: Path) -> Path:
    return make_unpaired(tmp_path / "unpaired")


# Small, fast settings shared by CLI tests.
