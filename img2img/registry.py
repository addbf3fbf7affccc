"""The one type behind every lookup by name (methods, generators, discriminators, norms, file
readers): a dict whose missing name is a one-line error that lists the choices."""
from __future__ import annotations

from typing import TypeVar

from .errors import Img2ImgError

T = TypeVar("T")


class UnknownName(Img2ImgError, KeyError, ValueError):
    """A name no registry entry has. A KeyError for lookups, a ValueError for settings checks,
    an Img2ImgError for the CLI's one line."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(dict[str, T]):
    """{name: entry}, explicit: entries are written out where the registry is defined."""

    def __init__(self, kind: str, entries: dict[str, T]) -> None:
        super().__init__(entries)
        self.kind = kind

    def __missing__(self, name: str) -> T:
        raise self.unknown(name)

    def unknown(self, name: str) -> UnknownName:
        """The error for a name this registry lacks."""
        return UnknownName(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
