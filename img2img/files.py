"""Files: atomic writes (a reader never sees a half-written file, and a failure keeps the old one) and digests."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from pathlib import Path
from typing import IO, Callable

from .errors import Img2ImgError


def _create_temporary(path: Path, suffix: str) -> tuple[int, Path]:
    """A new file beside `path`, created with mode 0666 so that the umask gives it the
    permissions of any new file (tempfile.mkstemp's 0600 would hide outputs from other users)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def _replacing(path: Path, tmp: Path) -> "contextlib.Generator[None, None, None]":
    """Rename `tmp` over `path` if the block succeeds; remove it otherwise."""
    try:
        yield
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise Img2ImgError(f"{path}: disk full while writing; the previous file is intact") from None
        raise


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "wb") -> "contextlib.Generator[IO, None, None]":
    """Yield a temporary file in the target's folder; on success fsync it and rename it over `path`."""
    path = Path(path)
    fd, tmp = _create_temporary(path, ".tmp")
    with _replacing(path, tmp), os.fdopen(fd, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str = ".tmp") -> "contextlib.Generator[Path, None, None]":
    """For writers that take a file name: yield a temporary path beside `path` (ending in
    `suffix`, for writers that go by it), renamed over `path` once the block succeeds."""
    path = Path(path)
    fd, tmp = _create_temporary(path, suffix)
    os.close(fd)
    with _replacing(path, tmp):
        yield tmp


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
