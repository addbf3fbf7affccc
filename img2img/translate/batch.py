"""Batch translation of files and folders: resumable, atomic, and never stopped by one bad file."""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..cancellation import check_stop
from ..errors import ImageReadError, Img2ImgError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.readers import is_image_file, is_volume_file, read_image, read_volume
from ..io.writers import FORMATS, output_suffix, with_suffix, write_image, write_volume
from .tiling import AUTO_TILING, Tiling
from .translator import NamedPixels, Translator
from .video import DEFAULT_CRF, DEFAULT_TEMPORAL_STATISTICS, VideoReport, is_video_file


@dataclass
class BatchReport:
    converted: int = 0
    tiled: int = 0
    skipped: int = 0
    ignored: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    videos: list[VideoReport] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (input, output): its name was taken

    def summary(self) -> str:
        tiled = f" ({self.tiled} of them in tiles)" if self.tiled else ""
        lines = [video.summary() for video in self.videos]
        lines += [
            f"converted {self.converted}{tiled}, skipped {self.skipped} (already done), failed {len(self.failures)}, "
            f"ignored {self.ignored} non-image files"
        ]
        lines += [f"renamed: {src} -> {dst} (another input's output has its name)" for src, dst in self.renamed]
        lines += [f"failed: {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def unique_outputs(pairs: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """The pairs with each output named once. Where inputs map to one output (a.png, a.jpg and
    a.bmp all to a.png), the input of that very name keeps it (else the first), and the others get
    their own extension as a suffix (a_jpg.png), then a number. Returns the pairs and the
    (input, output) of each renamed one."""
    keeps: dict[Path, int] = {}  # output: the index of the input that keeps its name
    for i, (src, dst) in enumerate(pairs):
        if dst not in keeps or (src.suffix.lower() == dst.suffix.lower() != pairs[keeps[dst]][0].suffix.lower()):
            keeps[dst] = i
    taken = set(keeps)
    renamed, result = [], []
    for i, (src, dst) in enumerate(pairs):
        if keeps[dst] != i:
            stem, kind, n = dst.name[: -len(dst.suffix)] if dst.suffix else dst.name, src.suffix.lstrip(".").lower(), 2
            candidate = dst.with_name(f"{stem}_{kind}{dst.suffix}")
            while candidate in taken:
                candidate, n = dst.with_name(f"{stem}_{kind}_{n}{dst.suffix}"), n + 1
            taken.add(candidate)
            renamed.append((str(src), str(candidate)))
            dst = candidate
        result.append((src, dst))
    return result, renamed


def plan_outputs(input_path: Path, output_path: Path, fmt: str = "auto", dtype: str = "uint8",
                 channels: int = 3) -> tuple[list[tuple[Path, Path]], int]:
    """(input, output) pairs mirroring INPUT's folder structure, and the count of non-image files.
    Each output's format follows `fmt` for outputs of `dtype` and `channels` (see data.writers).
    An output that would replace its own input is refused."""
    if fmt not in FORMATS:
        raise Img2ImgError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if not input_path.exists():
        raise Img2ImgError(f"{input_path}: no such file or folder")

    def target(src: Path, dst: Path) -> Path:
        return dst if is_video_file(src) else with_suffix(dst, output_suffix(src, fmt, dtype, channels))

    if input_path.is_file():
        # OUTPUT is a folder unless it names a file with an extension.
        dst = target(input_path, output_path / input_path.name) if output_path.suffix == "" or output_path.is_dir() \
            else output_path
        if dst.resolve() == input_path.resolve():
            raise Img2ImgError(f"{output_path}: is the input itself; write the translation elsewhere (inputs are never "
                               "replaced)")
        return [(input_path, dst)], 0
    in_resolved, out_resolved = input_path.resolve(), output_path.resolve()
    if out_resolved == in_resolved or in_resolved in out_resolved.parents:
        raise Img2ImgError(f"{output_path}: output folder may not lie inside the input folder {input_path}")
    files = sorted(p for p in input_path.rglob("*") if p.is_file())
    images = [p for p in files if is_image_file(p) or is_video_file(p)]
    pairs = [(p, target(p, output_path / p.relative_to(input_path))) for p in images]
    return pairs, len(files) - len(images)


class _ImageFiles(Dataset):
    """Decodes images in DataLoader workers; a failure travels back as its reason."""

    def __init__(self, paths: list[Path], limits: Limits) -> None:
        self.paths, self.limits = paths, limits

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        if is_volume_file(self.paths[i]):
            return i, None, None  # read whole in the main process (see translate_volume)
        try:
            return i, read_image(self.paths[i], limits=self.limits).array, None
        except ImageReadError as e:
            return i, None, e.reason


@dataclass(frozen=True)
class BatchSettings:
    """How a batch runs. `limits`: what one input may cost (checked from its header);
    `shard=(rank, world_size)` takes every world_size-th file; `tiling`: which images are tiled,
    and how (by default those above tiling.AUTO_TILE_PIXELS);
    `temporal_statistics`, `crf`, `codec`: videos (see img2img.translate.video)."""

    direction: str = "AtoB"
    batch_size: int = 8
    overwrite: bool = False
    fmt: str = "auto"
    size: int | None = None
    limits: Limits = DEFAULT_LIMITS
    num_workers: int = 2
    shard: tuple[int, int] = (0, 1)
    tiling: Tiling = AUTO_TILING
    temporal_statistics: int = DEFAULT_TEMPORAL_STATISTICS
    crf: int = DEFAULT_CRF
    codec: str | None = None


def translate_files(translator: Translator, input_path: Path | str, output_path: Path | str,
                    settings: BatchSettings | None = None, **changes) -> BatchReport:
    """Translate a file or a folder tree of images and videos, per `settings` (with `changes`,
    fields of BatchSettings, applied). Image decoding runs in worker processes and saving in
    threads, overlapping the network. Videos follow the images, one at a time."""
    s = dataclasses.replace(settings or BatchSettings(), **changes)
    direction, batch_size, size = s.direction, s.batch_size, s.size
    translator.network(direction)  # fail early on a direction the model lacks
    target = translator.formats(direction).target
    pairs, ignored = plan_outputs(Path(input_path), Path(output_path), s.fmt, target.dtype, target.channels)
    rank, world_size = s.shard
    pairs, renamed = unique_outputs(pairs)
    pairs = pairs[rank::world_size]
    report = BatchReport(ignored=ignored if rank == 0 else 0, renamed=renamed if rank == 0 else [])
    todo = [(src, dst) for src, dst in pairs if s.overwrite or not dst.exists()]
    report.skipped = len(pairs) - len(todo)
    videos = [(src, dst) for src, dst in todo if is_video_file(src)]
    todo = [(src, dst) for src, dst in todo if not is_video_file(src)]
    loader = DataLoader(_ImageFiles([src for src, _ in todo], s.limits), batch_size=None, collate_fn=_as_loaded,
                        num_workers=s.num_workers if len(todo) > 1 else 0)
    with tqdm(total=len(todo), desc="translate", unit="img", dynamic_ncols=True) as bar, \
            ThreadPoolExecutor(max_workers=2) as saver:
        pending, saves = [], []

        def flush() -> None:
            try:
                done = translator.translate_inputs([image for _, image in pending], direction, size, batch_size,
                                                   s.tiling)
            except Img2ImgError:
                # One input the model cannot take (e.g. its channel count): the others still go.
                done = []
                for i, image in pending:
                    try:
                        done += translator.translate_inputs([image], direction, size, batch_size, s.tiling)
                    except Img2ImgError as e:
                        done.append(None)
                        report.failures.append((str(todo[i][0]), str(e).split(": ", 1)[-1]))
            for (i, _), translation in zip(pending, done):
                if translation is None:
                    continue
                report.tiled += translation.tiling is not None
                saves.append((i, saver.submit(write_image, todo[i][1], translation.result)))
            pending.clear()

        for i, image, error in loader:
            check_stop()
            if error is not None:
                report.failures.append((str(todo[i][0]), error))
                bar.update(1)
                continue
            if image is None:  # a volume
                saves.append((i, saver.submit(translate_volume, translator, todo[i][0], todo[i][1], direction,
                                              batch_size, s.limits)))
                bar.update(1)
                continue
            pending.append((i, NamedPixels(todo[i][0].name, image)))
            if len(pending) == batch_size:
                flush()
            bar.update(1)
        if pending:
            flush()
        for i, future in saves:
            try:
                future.result()
                report.converted += 1
            except ImageReadError as e:
                report.failures.append((str(todo[i][0]), e.reason))
            except (OSError, ValueError, Img2ImgError) as e:
                report.failures.append((str(todo[i][0]), f"cannot write {todo[i][1]}: {e}"))
    for src, dst in videos:
        try:
            report.videos.append(translator.translate_video(src, dst, direction=direction, batch_size=batch_size,
                                                            temporal_statistics=s.temporal_statistics, crf=s.crf,
                                                            codec=s.codec, overwrite=True, tiling=s.tiling,
                                                            limits=s.limits))
            report.converted += 1
        except Img2ImgError as e:
            report.failures.append((str(src), str(e).removeprefix(f"{src}: ")))
    return report


def _as_loaded(item):
    """Items as the workers loaded them (DataLoader would turn the arrays into tensors)."""
    return item


def translate_volume(translator: Translator, src: Path, dst: Path, direction: str = "AtoB",
                     batch_size: int = 8, limits: Limits | None = DEFAULT_LIMITS) -> None:
    """A NIfTI volume translated slice by slice along the model's slice axis and written as
    NIfTI with the input's affine and header (several output channels become a 4th axis)."""
    axis = translator.cfg.data.slice_axis % 3
    volume, image = read_volume(src, limits, axis)
    # Views, not copies: np.take along an axis of NIfTI's column-major array copied the whole
    # volume for each slice (minutes for 600 slices of 256 px, before any cancellation check).
    slices = list(np.moveaxis(volume, axis, 0))
    out = translator.translate_pixels(slices, direction=direction, batch_size=batch_size)
    result = np.stack(out, axis=axis)  # X x Y x Z x C
    write_volume(dst, result[..., 0] if result.shape[-1] == 1 else result, image)
