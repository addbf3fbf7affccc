"""Dataset tools on data beyond 8-bit RGB."""
from __future__ import annotations

import numpy as np

from img2img.cli import main
from img2img.io.readers import read_image
from img2img.io.writers import write_image


def test_datasets_combine_keeps_16bit_pairs(tmp_path):
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 65536, (20, 30, 1), dtype=np.uint16) for _ in range(2))
    write_image(tmp_path / "a" / "x.png", a)
    write_image(tmp_path / "b" / "x.tif", b)
    assert main(["datasets", "combine", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                 "--output", str(tmp_path / "pairs")]) == 0
    assert np.array_equal(read_image(tmp_path / "pairs" / "x.png").array, np.concatenate([a, b], axis=1))
