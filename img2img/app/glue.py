"""Where the page meets Gradio: the library's errors as Gradio's, uploads handed over untouched,
and whether a request's client has gone."""
from __future__ import annotations

import functools

import gradio as gr

from ..errors import Img2ImgError


def shown_on_page(handler):
    """The library's errors as Gradio errors: one line on the page, and in an API client."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Img2ImgError as e:
            raise gr.Error(str(e)) from None
    return wrapped


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
