"""Files: atomic writes (a reader never sees a half-written file, and a failure keeps the old one) and digests."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, IO

from .errors import Img2ImgError


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "wb") -> "contextlib.Generator[IO, None, None]":
    """Yield a temporary file in the target's folder; on success fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise Img2ImgError(f"{path}: disk full while writing; the previous file is intact") from None
        raise


def atomic_write(path: Path | str, write: Callable[[IO], None], mode: str = "wb") -> None:
    with atomic_open(path, mode) as f:
        write(f)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def sha256_of(path: Path | str) -> str:
    """The file's sha256, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
