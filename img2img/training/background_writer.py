"""Checkpoint writes off the training thread.

`submit` copies the state to host memory (so that training may go on updating its tensors in
place), then hands the write, the fsync and the rename to one background thread. At most one
write is in flight: a second `submit` first waits for the first, so memory holds one pending
copy at most. A failed write is reported in one line; the files it would have replaced stay.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import torch

from ..errors import Img2ImgError
from ..log import logger


def to_host(obj: Any) -> Any:
    """A copy of `obj` with every tensor copied to (pinned, where CUDA is involved) host memory."""
    copies: list[tuple[torch.Tensor, torch.Tensor]] = []

    def copy(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if x.device.type == "cuda":
                host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
                copies.append((host, x))
                return host
            return x.detach().clone()
        if isinstance(x, dict):
            return {k: copy(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(copy(v) for v in x)
        return x

    out = copy(obj)
    for host, device in copies:
        host.copy_(device.detach(), non_blocking=True)
    if copies:
        torch.cuda.synchronize()
    return out


class BackgroundWriter:
    """Runs write jobs one at a time on a daemon thread; `wait()` blocks until none is pending."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None], what: str) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(job, what), name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _run(self, job: Callable[[], None], what: str) -> None:
        try:
            job()
        except Img2ImgError as e:  # names the file already
            logger.warning(f"warning: {e}; training goes on")
        except OSError as e:
            logger.warning(f"warning: {what} not written ({e.strerror or e}); the previous one is intact")

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
