"""One Translator serves concurrent requests (the app shares one per model across its threads)."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from helpers import TINY_PIX2PIX

from img2img.cli import main
from img2img.translate.translator import Translator


@pytest.mark.slow
def test_concurrent_translations_through_one_translator_equal_serial_ones(paired_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(paired_dir), "--out", str(out), "--max-steps", "2", *TINY_PIX2PIX]) == 0
    translator = Translator.from_checkpoint(out / "checkpoints" / "latest.pt", device="cpu")
    torch.manual_seed(0)
    inputs = [torch.rand(1, 3, 64, 64) * 2 - 1 for _ in range(8)]
    serial = [translator.translate_tensor(x) for x in inputs]

    def translate(i: int) -> torch.Tensor:
        return translator.translate_tensor(inputs[i % len(inputs)])

    # Per-image BatchNorm must hold for every call, whatever the others are doing.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(translate, range(400)))
    mismatched = [i for i, y in enumerate(results) if not torch.equal(y, serial[i % len(inputs)])]
    assert not mismatched, f"{len(mismatched)} of {len(results)} concurrent results differ from serial ones"
