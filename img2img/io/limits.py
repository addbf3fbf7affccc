"""What one input may cost, checked from its file's header before any pixels are decoded: a
small file can declare gigabytes of pixels (a 1 KB .nii.gz of 2048³ voxels, a 62 KB TIFF of 32
float planes of 4000²). The same limits serve the app, the CLI (`--max-*` flags, generated from
these fields) and the library; each one is raised by a setting, never skipped.

The defaults are sized for a 16 GB server translating two requests at once (docs/app.md,
"Serving the app to others", has the arithmetic)."""
from __future__ import annotations

from dataclasses import dataclass, field


def limit(default: float, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    max_pixels: int = limit(40_000_000, "pixels of one image or volume slice")
    max_channels: int = limit(64, "channels (bands, planes) of one image")
    max_decoded_mb: int = limit(1024, "MB of one decoded image: width x height x channels x bytes per value")
    max_volume_voxels: int = limit(512**3, "voxels of one volume translated whole (NIfTI)")
    max_volume_slices: int = limit(2048, "slices of one volume along its slice axis")
    max_video_pixels: int = limit(3840 * 2160, "pixels of one video frame")
    max_video_seconds: float = limit(600, "length of one video in seconds")
    max_video_frames: int = limit(36_000, "frames of one video")


DEFAULT_LIMITS = Limits()


def flag_for(name: str) -> str:
    return "--" + name.replace("_", "-")


def over_limit(what: str, value: float, name: str, limits: Limits, unit: str = "") -> str | None:
    """The refusal for `value` above `limits.<name>` ("{what} {value}{unit}, over the limit of ..."),
    naming the flag that raises it; None if within."""
    bound = getattr(limits, name)
    if value <= bound:
        return None
    return f"{what} {value:,.0f}{unit}, over the limit of {bound:,.0f}{unit} (raise {flag_for(name)} to allow it)"
