"""Where the page meets Gradio: the library's errors as Gradio's, uploads handed over untouched,
heavy work that stops, and whether a request's client has gone."""
from __future__ import annotations

import functools
import re

import gradio as gr

from ..cancellation import StopSignal
from ..errors import Img2ImgError
from ..log import logger
from ..service.serving import LoginThrottle, run_stoppable


def refusal(message: str) -> gr.Error:
    """A request refused: its one line on the page and in an API client, and one line in the
    server's log (Gradio would print a traceback for each)."""
    logger.info(f"refused: {message}")
    return gr.Error(message, print_exception=False)


def _as_gradio_error(line: str):
    raise gr.Error(line, print_exception=False)


def shown_on_page(handler):
    """The library's errors as Gradio errors: one line on the page, and in an API client (and in
    the server's log, see `in_place`)."""
    return in_place(_as_gradio_error)(handler)


def in_place(on_refusal):
    """A handler whose refusals the page shows where the person is looking: `on_refusal(line)`
    gives the handler's outputs (the section's own status line with the reason, stale results
    cleared, every control left as it was), and the server's log gets the line. No error badge."""
    def decorate(handler):
        @functools.wraps(handler)
        def wrapped(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Img2ImgError as e:
                logger.info(f"refused: {e}")
                return on_refusal(str(e))
        return wrapped
    return decorate


def stoppable(app: gr.Blocks, time_limit_s: float | None):
    """A handler made heavy work: on a worker thread, stopped at `time_limit_s`, when its client
    cancels, or when the client goes away (see service.serving.run_stoppable); the library's
    errors shown in one line. The handler takes a gr.Request, to know its client."""
    def decorate(handler):
        @functools.wraps(handler)
        async def wrapped(*args, **kwargs):
            request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
            try:
                return await run_stoppable(lambda: handler(*args, **kwargs), StopSignal(time_limit_s),
                                           lambda: client_gone(app, request))
            except Img2ImgError as e:
                raise refusal(str(e)) from None
        return wrapped
    return decorate


def handing_over_uploads(image: gr.Image) -> gr.Image:
    """`image`, made to hand over an uploaded file untouched: gr.Image opens every upload with
    PIL (any format, whatever its name) and converts it, before the app's header check, and a
    file it cannot open got Gradio's generic error rather than the app's one line. (Patched on
    the instance: a subclass of a Gradio component makes Gradio write a .pyi beside its module.)"""
    convert = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)  # Gradio has checked it lies in its upload folder
        return convert(payload)

    image.preprocess = preprocess
    return image


def client_gone(app: gr.Blocks, request: gr.Request | None) -> bool:
    """Whether Gradio has given up on this request's client: when its event stream closes, the
    queue marks the session's running events not alive (Gradio's queue internals, 6.x)."""
    queue = getattr(app, "_queue", None)
    if request is None or queue is None:
        return False
    events = [e for job in queue.active_jobs if job for e in job if e.session_hash == request.session_hash]
    return bool(events) and not any(e.alive for e in events)


def user_of(request: gr.Request | None) -> str | None:
    """The login a request comes from (None on a server without logins: everyone is one user)."""
    return getattr(request, "username", None) if request is not None else None


class NoApiInfoBeforeLogin:
    """ASGI middleware: Gradio embeds the whole API description (`window.gradio_api_info`, every
    endpoint) in each page it serves, the login page too, while /gradio_api/info answers 401
    there. A page that asks for a login gets `null` in its place. Only HTML is looked at."""

    EMBEDDED = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return await self.app(scope, receive, send)
        start, chunks = None, []

        async def inspect(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    start = False
                    return await send(message)
                start = message
                return None
            if start is False or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return None
            body = b"".join(chunks)
            if b'"auth_required":true' in body.replace(b" ", b""):
                body = self.EMBEDDED.sub(b"window.gradio_api_info = null;</script>", body)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, inspect)


def launch_options(accounts: list[tuple[str, str]]) -> dict:
    """What `Blocks.launch` takes to serve the app safely: logins checked by a LoginThrottle, and
    no API description before a login."""
    from starlette.middleware import Middleware

    return {"auth": LoginThrottle(accounts) if accounts else None,
            "app_kwargs": {"middleware": [Middleware(NoApiInfoBeforeLogin)]}}
