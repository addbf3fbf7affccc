"""Streamed downloads that resume after an interruption (HTTP Range) and land atomically."""
from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .errors import Img2ImgError

CHUNK = 1 << 20


class ConnectionFailed(Img2ImgError):
    """No answer from the server at all (refused, unreachable, or no TLS on an https URL)."""


def download(url: str, dest: Path | str, expected_size: int | None = None, timeout: float = 60,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download `url` to `dest` (skipped if `dest` exists).

    Bytes go to `dest.part`; a later call resumes from its end when the server honours Range,
    and starts over when it does not. `dest` appears only once complete and of the expected
    size (`expected_size`, else the server's Content-Length). `progress(bytes, total)` is called
    as bytes arrive (total None when the server does not say), besides the terminal's bar.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part file is already whole
            return _finish(part, dest, expected_size)
        raise Img2ImgError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionFailed(f"{url}: download failed ({getattr(e, 'reason', e)})") from None
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else expected_size
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, dynamic_ncols=True
        ) as bar:
            try:
                # read1: what has arrived (up to CHUNK), so progress moves on a slow connection.
                while chunk := response.read1(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
                    if progress is not None:
                        progress(bar.n, total)
            except (http.client.IncompleteRead, OSError) as e:
                f.flush()
                raise Img2ImgError(
                    f"{url}: download interrupted after {f.tell()} bytes ({type(e).__name__}); "
                    "run the command again to resume"
                ) from None
            f.flush()
            os.fsync(f.fileno())
    if total is not None and part.stat().st_size < total:
        raise Img2ImgError(f"{url}: download interrupted after {part.stat().st_size} of {total} bytes; "
                           "run the command again to resume")
    return _finish(part, dest, expected_size or total)


def _finish(part: Path, dest: Path, expected_size: int | None) -> Path:
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise Img2ImgError(f"{dest.name}: downloaded {size} bytes, expected {expected_size}; removed, try again")
    os.replace(part, dest)
    return dest
