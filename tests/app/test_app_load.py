"""The app under concurrent load: every response whole and correct."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import launch, random_image

CLIENTS = 12
REQUESTS = 4


@pytest.mark.slow
def test_twelve_concurrent_clients_get_every_response_whole_and_correct(models_dir, tmp_path):  # noqa: F811
    """All clients send the same picture, so all outputs are the same image: before responses
    were files of their own, Gradio rewrote its one cached copy while others downloaded it, and
    some responses came back cut short."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from img2img.translate.translator import Translator

    image = tmp_path / "same.png"
    random_image(np.random.default_rng(3), 96, 64).save(image)
    expected = np.asarray(Translator.from_checkpoint(models_dir / "tiny.pt", device="cpu").translate(image), int)
    app, url = launch(models_dir, tmp_path)
    try:
        def user(_: int) -> list[str]:
            client, problems = Client(url, verbose=False), []
            for _ in range(REQUESTS):
                try:
                    output, details = client.predict(handle_file(str(image)), api_name="/translate")
                    result = np.asarray(Image.open(output).convert("RGB"), int)
                    if result.shape != expected.shape or np.abs(result - expected).max() > 1 or "96×64 px" not in details:
                        problems.append("a wrong result")
                except Exception as e:  # a truncated response raises in the client
                    problems.append(f"{type(e).__name__}: {e}")
            return problems

        with ThreadPoolExecutor(CLIENTS) as pool:
            problems = [p for user_problems in pool.map(user, range(CLIENTS)) for p in user_problems]
    finally:
        app.close()
    assert problems == [], f"{len(problems)} of {CLIENTS * REQUESTS} requests failed: {problems[:3]}"
