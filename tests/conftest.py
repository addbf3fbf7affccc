"""Shared fixtures: tiny generated datasets, never the shared ones."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import HubServer, make_paired, make_unpaired

# Under pytest-xdist (`make test`: two workers on two cores) each worker, and each process a test
# starts, computes on one thread: more would contend for the same cores and run slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX exports made for onnxruntime go to a temporary cache, not the user's."""
    os.environ["IMG2IMG_CACHE"] = str(tmp_path_factory.mktemp("img2img_cache"))


@pytest.fixture
def paired_dir(tmp_path: Path) -> Path:
    return make_paired(tmp_path / "paired")


@pytest.fixture
def unpaired_dir(tmp_path: Path) -> Path:
    return make_unpaired(tmp_path / "unpaired")


# Small, fast settings shared by CLI tests.


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A Hugging Face Hub of the test's own (helpers.HubServer), with the Hub's cache in tmp_path."""
    server = HubServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.httpd.shutdown()
