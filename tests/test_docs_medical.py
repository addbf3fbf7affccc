"""The docs' medical-images sequence runs as written."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    ROOT,
)

from img2img.io.readers import read_image


@pytest.mark.slow
def test_the_medical_images_sequence_of_the_docs_runs_as_written(tmp_path):
    import subprocess

    readme = (ROOT / "docs" / "data.md").read_text()
    block = readme.split("<!-- medical-example -->\n```bash\n")[1].split("```\n<!-- /medical-example -->")[0]
    # As written but for the training's length: two steps show the commands work together.
    length = "--epochs 5 --epochs-decay 5"
    assert block.count(length) == 1
    block = block.replace(length, "--max-steps 2")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "domain A (A): 1 channel int16 -1024..3071 (from --range-a)" in done.stdout
    assert read_image(tmp_path / "ct_out" / "slice_000.tif").array.dtype == np.int16
    import nibabel

    assert nibabel.load(tmp_path / "ct_out" / "volume.nii.gz").shape == (128, 128, 8)
