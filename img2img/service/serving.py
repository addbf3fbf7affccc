"""Serving the app to others: who may use it, how much work it takes at once, and requests that
stop when asked. The numbers and their memory arithmetic are in docs/app.md, "Serving the app
to others"."""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio

from ..cancellation import StopSignal, stop_on
from ..errors import Img2ImgError
from ..log import logger
from ..persist.hub import is_hub_reference

T = TypeVar("T")


@dataclass(frozen=True)
class ServingSettings:
    """How much the app takes on. Heavy requests (image, video, file, batch) share one group of
    `max_concurrent` workers; up to `max_queue` more wait, and the next is told the queue is full.
    Each request stops after `time_limit_s`; live webcam streams are at most `max_live_streams` at
    once. Uploads above `max_upload_mb` are refused by Gradio while they arrive, and its copies of
    uploads and results are removed after `cache_minutes`."""

    max_concurrent: int = field(default=2, metadata={"help": "heavy requests translated at once"})
    max_queue: int = field(default=16, metadata={"help": "requests waiting; the next is told the queue is full"})
    max_live_streams: int = field(default=2, metadata={"help": "webcam streams at once"})
    time_limit_s: float = field(default=600, metadata={"help": "seconds one request may run before it is stopped"})
    max_upload_mb: int = field(default=200, metadata={"help": "MB of one upload, refused while it arrives"})
    max_batch_files: int = field(default=64, metadata={"help": "files in one batch"})
    max_download_mb: int = field(default=1024, metadata={"help": "MB of one Hub model a visitor adds, refused "
                                                                 "from the repo's listing before it is downloaded"})
    cache_minutes: int = field(default=30, metadata={"help": "minutes uploads and results are kept"})


def serving_flag(name: str) -> str:
    return "--time-limit" if name == "time_limit_s" else "--" + name.replace("_", "-")


def parse_auth(pairs: list[str], auth_file: Path | str | None = None) -> list[tuple[str, str]]:
    """`user:password` pairs, given on the command line or one per line in a file (blank lines
    and # comments skipped)."""
    lines = list(pairs)
    if auth_file:
        try:
            text = Path(auth_file).read_text()
        except OSError as e:
            raise Img2ImgError(f"{auth_file}: cannot read the auth file ({e.strerror})") from None
        lines += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    accounts = []
    for i, line in enumerate(lines, 1):
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise Img2ImgError(f"auth entry {i}: expected user:password with neither empty")
        accounts.append((user, password))
    return accounts


class LoginThrottle:
    """The login check, slower after failures, so that passwords cannot be guessed at speed.
    After `free` wrong passwords in a row for a login, each answer for it waits `first_delay`
    seconds, doubling with each further failure up to `max_delay`; wrong passwords from
    anywhere add up too (a guesser that tries many logins), waiting at most `max_delay` / 4.
    A right password resets its login's count, and still works after any number of failures.
    Each failure is logged in one line, without the password. Gradio calls it as `auth=`."""

    def __init__(self, accounts: list[tuple[str, str]], free: int = 3, first_delay: float = 0.5,
                 max_delay: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.accounts = dict(accounts)
        self.free, self.first_delay, self.max_delay, self.sleep = free, first_delay, max_delay, sleep
        self.failures: dict[str, int] = {}
        self.recent = 0  # failures of any login since the last success
        self._lock = threading.Lock()

    def delay(self, username: str) -> float:
        with self._lock:
            own = self.failures.get(username, 0) - self.free
            anyone = self.recent - self.free
        mine = self.first_delay * 2 ** own if own >= 0 else 0.0
        everyone = self.first_delay * anyone / 10 if anyone > 0 else 0.0
        return min(self.max_delay, max(mine, min(everyone, self.max_delay / 4)))

    def __call__(self, username: str, password: str) -> bool:
        wait = self.delay(username)
        if wait:
            self.sleep(wait)
        expected = self.accounts.get(username)
        ok = expected is not None and hmac.compare_digest(expected.encode(), password.encode())
        with self._lock:
            if ok:
                self.failures.pop(username, None)
                self.recent = 0
                return True
            self.failures[username] = self.failures.get(username, 0) + 1
            self.recent += 1
            count = self.failures[username]
        logger.warning(f"login refused for {username[:64]!r}: {count} wrong in a row (answered after {wait:.1f} s)")
        return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, share: bool, has_auth: bool, allow_anonymous: bool) -> str | None:
    """Why the app must not start as asked: reachable from elsewhere with no login."""
    if has_auth or allow_anonymous or (is_loopback(host) and not share):
        return None
    where = "a public --share link" if share else f"--host {host}"
    return (f"{where} without a login would let anyone use this server: add --auth user:password (or --auth-file), "
            "or --allow-anonymous to serve it openly on purpose")


def downloads_allowed(has_login: bool, host: str, share: bool) -> bool:
    """Whether visitors may add models (published ones, or from the Hub), which costs the server
    disk and bandwidth: logged-in users may, and anyone when only this machine can connect."""
    return has_login or (is_loopback(host) and not share)


def split_model_sources(sources: list[str]) -> tuple[str, list[str]]:
    """(the checkpoint folder, the Hub models) of `--checkpoints`' values: at most one folder
    (default checkpoints), any number of hf://user/name[@revision]."""
    folders = [s for s in sources if not is_hub_reference(s)]
    if len(folders) > 1:
        raise Img2ImgError(f"--checkpoints takes one folder, not {len(folders)}")
    return (folders[0] if folders else "checkpoints"), [s for s in sources if is_hub_reference(s)]


async def run_stoppable(work: Callable[[], T], signal: StopSignal, client_gone: Callable[[], bool],
                        poll_s: float = 0.25) -> T:
    """`work()` on a worker thread under `signal` (see img2img.cancellation). When the awaiting
    task is cancelled (the client cancelled) or `client_gone()` turns true (it disconnected), the
    signal is set and the work stops at its next check (between tiles, frames, slices, files)."""
    def run() -> T:
        with stop_on(signal):
            return work()

    task = asyncio.ensure_future(anyio.to_thread.run_sync(run))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if client_gone():
                signal.set("the client went away")
    except asyncio.CancelledError:
        signal.set("cancelled by the client")
        # Nobody awaits the work now: its "stopped" error is taken here, not printed by asyncio
        # as a traceback ("Task exception was never retrieved").
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise
