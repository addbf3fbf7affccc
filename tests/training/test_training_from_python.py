"""The "Training from Python" code in docs/training.md runs as written, on a tiny dataset in
place of facades and with fewer steps."""
import re

import pytest
from helpers import ROOT, make_paired
from PIL import Image


@pytest.mark.slow
def test_the_documented_python_training_code_trains_and_translates(tmp_path, monkeypatch):
    page = (ROOT / "docs" / "training.md").read_text()
    section = page.split("## Training from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    make_paired(tmp_path / "datasets" / "facades", size=32)
    Image.new("RGB", (48, 40), (20, 90, 200)).save(tmp_path / "my_labels.png")
    code = code.replace("size=128, load_size=143", "size=32, load_size=36").replace("max_steps=200", "max_steps=2")
    assert code.count("size=32") == 1 and "max_steps=2," in code  # the substitutions found their text
    namespace = {}
    exec(compile(code, "docs/training.md", "exec"), namespace)
    assert namespace["checkpoint"].is_file()
    assert namespace["cfg"].method_config.lambda_l1 == 50.0
    assert Image.open(tmp_path / "facade.png").size == (48, 40)
