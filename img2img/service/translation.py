"""What the app does for each request, without the page: the models on offer, the request's
model resolved, checked and loaded, the translation of an image, a webcam frame, a video, a
scientific file or a batch, and the lines and previews that go back. Errors are `ServiceError`s
whose text a visitor may see (server paths stripped); the page shows them as they are.

Each request writes into a folder of its own (`request_folder`), which only that request
removes; every input is checked against the service's `Limits` from its header before it is
decoded, and the work stops between tiles, frames, slices and files when the request's
`StopSignal` is set (img2img.cancellation)."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cancellation import Cancelled, check_stop
from ..errors import Img2ImgError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.pixel_format import resize_pixels
from ..io.readers import check_volume, is_volume_file, read_volume, reader_for
from ..io.writers import output_suffix, with_suffix, write_image
from ..translate.batch import translate_volume, unique_outputs
from ..translate.translator import to_pil
from ..translate.video import DEFAULT_TEMPORAL_STATISTICS, VideoSource
from .models import (
    AppModels,
    Progress,
    ServiceError,
    _no_progress,
    visitor_message,
)

# What the file upload takes: images of any bit depth and channel count, arrays, scans.
FILE_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".npy", ".dcm", ".nii", ".gz"]

MAX_LIVE_PIXELS = 4096 * 2160
MAX_BATCH_FILES = 64

# progress(fraction done or None, desc=what is happening), as Gradio's gr.Progress is called.


@dataclass
class FileResult:
    """A scientific file translated: previews of input and output (PNG files of their own, for
    the reason in `translate_image`), the lossless file, a line."""

    input_preview: Path
    output_preview: Path
    path: Path
    details: str


class ImageRequests(AppModels):
    """Images, webcam frames and videos, each in a request folder of its own. `work` holds every
    file the service writes (examples, each request's folder); `limits` bound what one input may
    cost."""

    def __init__(self, checkpoint_dir: Path | str, work: Path, device: str = "auto",
                 limits: Limits = DEFAULT_LIMITS, published_url: str | None = None,
                 max_batch_files: int = MAX_BATCH_FILES, precision: str = "auto",
                 hub_models: list[str] | tuple[str, ...] = (), allow_downloads: bool = True,
                 max_download_mb: int | None = None) -> None:
        super().__init__(checkpoint_dir, work, device, published_url, precision, hub_models, allow_downloads,
                         max_download_mb)
        self.limits = limits
        self.max_batch_files = max_batch_files

    @contextlib.contextmanager
    def request_folder(self) -> Iterator[Path]:
        """A folder of one request's own, removed when the request ends, however it ends."""
        folder = Path(tempfile.mkdtemp(prefix="request_", dir=self.work))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def check_upload(self, path: str | Path) -> None:
        """Refuse a file over the limits from its header, before a model is loaded for it."""
        path = Path(path)
        try:
            if is_volume_file(path):
                check_volume(path, self.limits)
            reader_for(path).check(path, self.limits, -1)
        except Img2ImgError as e:
            raise ServiceError(visitor_message(e, path)) from None
        except Exception as e:  # each library raises its own types for broken headers
            raise ServiceError(f"{path.name}: cannot read its header ({type(e).__name__})") from None

    def run_pixels(self, path: str, model: str | None, direction: str, steps: int | None = None):
        """(the translation, translator, a line saying what made it) of an image file of any
        format the readers know, read once and converted to the model's input as needed."""
        self.check_upload(path)
        info, translator = self.load(model, direction, steps)
        start = time.perf_counter()
        # One tile per network call: a request stops between calls, and on a CPU larger batches of
        # tiles gain little (a 512 px tile of a 9-block ResNet alone takes seconds).
        translation = translator.translate_file(path, direction, self.limits, batch_size=1)
        seconds = time.perf_counter() - start
        height, width = translation.source.shape[:2]
        how = f"in {translation.tiling.describe()}" if translation.tiling else "whole"
        details = (f"**{info.name}**, {info.direction_label(direction)} ({info.details}); "
                   f"{width}×{height} px {how}, {translator.describe_precision(direction)} on {translator.device}; "
                   f"{seconds:.2f} s")
        return translation, translator, details

    def translate_image(self, image: str, model: str | None, direction: str, out_dir: Path,
                        steps: int | None = None) -> tuple[Path, str]:
        """The translation as a PNG file of its own (the output itself for 8-bit models, else its
        preview) and a line saying what made it."""
        try:
            translation, translator, details = self.run_pixels(image, model, direction, steps)
        except (ServiceError, Cancelled):
            raise
        except Img2ImgError as e:
            raise ServiceError(visitor_message(e, image)) from None
        # A file of its own: Gradio writes returned PIL images to a path named by their content,
        # and rewrote it while another request for the same picture was still downloading it
        # (truncated responses under concurrent load); a file it copies once, atomically.
        out = out_dir / "translated.png"
        to_pil(translation.result, translator.formats(direction).target).save(out, format="PNG")
        return out, details

    def translate_video(self, video: str, model: str | None, direction: str, out_dir: Path,
                        temporal_statistics: int = DEFAULT_TEMPORAL_STATISTICS,
                        progress: Progress = _no_progress, steps: int | None = None) -> tuple[Path, str]:
        """A video file in, the translated MP4 (H.264, its sound kept) and a line on what made it."""
        try:
            VideoSource(Path(video), self.limits).close()  # its header against the limits, before a model loads
        except Img2ImgError as e:
            raise ServiceError(visitor_message(e, video)) from None
        info, translator = self.load(model, direction, steps)
        out = out_dir / f"{Path(video).stem}_translated.mp4"

        def report(done: int, total: int | None) -> None:
            progress(done / total if total else None, desc=f"{done}{f' of {total}' if total else ''} frames")

        try:
            result = translator.translate_video(video, out, direction=direction, show_bar=False,
                                     temporal_statistics=int(temporal_statistics), progress=report,
                                     limits=self.limits)
        except Img2ImgError as e:
            raise ServiceError(visitor_message(e, video, out)) from None
        summary = result.summary().split(": ", 1)[1]
        return out, (f"**{info.name}**, {info.direction_label(direction)} ({info.details}): {summary}, "
                     f"{translator.describe_precision(direction)} on {translator.device}")

    def translate_frame(self, frame: np.ndarray, model: str | None, direction: str, side: float,
                        times: list[float] | None, steps: int | None = None) -> tuple[np.ndarray, str, list[float]]:
        """One webcam frame, scaled so that its longer side is `side`, translated; with the frames/s
        reached over the last 20 frames of this stream (`times`, which it returns updated)."""
        _, translator = self.load(model, direction, steps)
        height, width = frame.shape[:2]
        if width * height > MAX_LIVE_PIXELS:
            raise ServiceError(f"a webcam frame of {width}x{height} is over the {MAX_LIVE_PIXELS / 1e6:g} MP "
                               "the live tab takes")
        scale = min(1.0, side / max(height, width))
        small = resize_pixels(frame, max(1, round(width * scale)), max(1, round(height * scale)))
        result = translator.translate_pixels(small, direction=direction)
        times = [*(times or [])[-19:], time.perf_counter()]
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return (np.asarray(to_pil(result, translator.formats(direction).target).convert("RGB")),
                f"{rate:.1f} frames/s translated, {width}×{height} → {small.shape[1]}×{small.shape[0]} px "
                f"({translator.describe_precision(direction)} on {translator.device})", times)


class TranslationService(ImageRequests):
    """The app's library layer: models, images, frames and videos (ImageRequests), and files
    translated without loss, one or a batch."""

    def translate_one(self, path: str, model: str | None, direction: str, out: Path,
                      steps: int | None = None) -> Path:
        """One uploaded file translated into `out` without loss; returns its preview PNG."""
        source = Path(path)
        self.check_upload(source)
        _, translator = self.load(model, direction, steps)
        target = translator.formats(direction).target
        preview = out.parent / f"{out.name}.preview.png"
        if is_volume_file(source):
            translate_volume(translator, source, out, direction, limits=self.limits)
            axis = translator.cfg.data.slice_axis % 3
            volume, _ = read_volume(out, None)
            result = np.moveaxis(volume, axis, 0)[volume.shape[axis] // 2]  # H x W, or H x W x C
            to_pil(result[..., None] if result.ndim == 2 else result, target).save(preview)
        else:
            translation, translator, _ = self.run_pixels(path, model, direction, steps)
            write_image(out, translation.result)
            to_pil(translation.result, target).save(preview)
        return preview

    def translate_many(self, files: list[str], model: str | None, direction: str, out_dir: Path,
                       progress: Progress = _no_progress,
                       steps: int | None = None) -> tuple[list[tuple[str, str]], Path, str]:
        """Each file translated and written without loss (16-bit PNG, TIFF, .npy, NIfTI as they
        came), all of them in one zip: (gallery of previews, the zip, a status line). A file that
        fails is skipped and named in the status; outputs whose names collide get a suffix."""
        if len(files) > self.max_batch_files:
            raise ServiceError(f"{len(files)} files in one batch; at most {self.max_batch_files}")
        info, translator = self.load(model, direction, steps)
        target = translator.formats(direction).target
        results = out_dir / "results"
        results.mkdir()
        planned = [(Path(f), results / with_suffix(Path(f), output_suffix(Path(f), "auto", target.dtype,
                                                                          target.channels)).name) for f in files]
        planned, renamed = unique_outputs(planned)
        gallery, problems = [], []
        zip_path = out_dir / "translated.zip"
        start = time.perf_counter()
        with zipfile.ZipFile(zip_path, "w") as archive:
            for done, (source, out) in enumerate(planned):
                check_stop()
                progress(done / len(files), desc="Translating")
                try:
                    preview = self.translate_one(str(source), model, direction, out, steps)
                except Cancelled:
                    raise
                except Img2ImgError as e:
                    problems.append(f"- {source.name}: {visitor_message(e, source).split(': ', 1)[-1]}")
                    continue
                archive.write(out, out.name)
                gallery.append((str(preview), source.name))
        status = (f"Translated {len(gallery)} of {len(files)} images with **{info.name}**, "
                  f"{info.direction_label(direction)}, in {time.perf_counter() - start:.1f} s "
                  f"({translator.describe_precision(direction)} on {translator.device}).")
        if renamed:
            status += " Renamed, as another file's result has the name: " + ", ".join(
                f"{Path(src).name} → {Path(dst).name}" for src, dst in renamed) + "."
        if problems:
            status += " Skipped:\n" + "\n".join(problems)
        return gallery, zip_path, status

    def translate_file(self, file: str, model: str | None, direction: str, out_dir: Path,
                       steps: int | None = None) -> FileResult:
        """A scientific image (16-bit, float, multi-band, DICOM, NIfTI), translated without loss."""
        self.check_upload(file)
        info, translator = self.load(model, direction, steps)
        try:
            formats = translator.formats(direction)
            if is_volume_file(Path(file)):
                target = formats.target
                out = out_dir / with_suffix(Path(file), output_suffix(Path(file), "auto", target.dtype,
                                                                       target.channels)).name
                preview = self.translate_one(file, model, direction, out, steps)
                volume, _ = read_volume(file, self.limits)
                axis = translator.cfg.data.slice_axis % 3
                middle = np.moveaxis(volume, axis, 0)[volume.shape[axis] // 2]
                shown_in = out_dir / "input.preview.png"
                to_pil(translator.pixels_of(middle, direction), formats.source).save(shown_in)
                details = f"**{info.name}**, {info.direction_label(direction)}: a volume of {volume.shape[axis]} slices"
                return FileResult(shown_in, preview, out, details)
            translation, translator, details = self.run_pixels(file, model, direction)
            pixels, result = translation.source, translation.result
            out = out_dir / with_suffix(Path(file), output_suffix(Path(file), "same", formats.target.dtype,
                                                                   formats.target.channels)).name
            write_image(out, result)
        except (ServiceError, Cancelled):
            raise
        except Img2ImgError as e:
            raise ServiceError(visitor_message(e, file)) from None
        details += f"; output {formats.target.describe()}, written as {out.suffix} without loss"
        shown_in, shown_out = out_dir / "input.preview.png", out_dir / "output.preview.png"
        to_pil(pixels, formats.source).save(shown_in)
        to_pil(result, formats.target).save(shown_out)
        return FileResult(shown_in, shown_out, out, details)
