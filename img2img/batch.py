"""Batch translation of files and folders: resumable, atomic, and never stopped by one bad file."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .data.images import DEFAULT_MAX_PIXELS, is_image_file, load_rgb
from .errors import Img2ImgError, ImageReadError
from .inference import Translator
from .files import atomic_write

FORMATS = {"png": ".png", "jpg": ".jpg", "same": None}


@dataclass
class BatchReport:
    converted: int = 0
    tiled: int = 0
    skipped: int = 0
    ignored: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        tiled = f" ({self.tiled} of them in tiles)" if self.tiled else ""
        lines = [
            f"converted {self.converted}{tiled}, skipped {self.skipped} (already done), failed {len(self.failures)}, "
            f"ignored {self.ignored} non-image files"
        ]
        lines += [f"failed: {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


def plan_outputs(input_path: Path, output_path: Path, fmt: str = "png") -> tuple[list[tuple[Path, Path]], int]:
    """(input, output) pairs mirroring INPUT's folder structure, and the count of non-image files."""
    if fmt not in FORMATS:
        raise Img2ImgError(f"--format {fmt}: choose png, jpg or same")
    if not input_path.exists():
        raise Img2ImgError(f"{input_path}: no such file or folder")
    if input_path.is_file():
        # OUTPUT is a folder unless it names a file with an extension.
        if output_path.suffix == "" or output_path.is_dir():
            return [(input_path, _with_format(output_path / input_path.name, fmt))], 0
        return [(input_path, output_path)], 0
    in_resolved, out_resolved = input_path.resolve(), output_path.resolve()
    if out_resolved == in_resolved or in_resolved in out_resolved.parents:
        raise Img2ImgError(f"{output_path}: output folder may not lie inside the input folder {input_path}")
    files = sorted(p for p in input_path.rglob("*") if p.is_file())
    images = [p for p in files if is_image_file(p)]
    pairs = [(p, _with_format(output_path / p.relative_to(input_path), fmt)) for p in images]
    return pairs, len(files) - len(images)


def _with_format(path: Path, fmt: str) -> Path:
    suffix = FORMATS[fmt]
    return path if suffix is None else path.with_suffix(suffix)


class _ImageFiles(Dataset):
    """Decodes images in DataLoader workers; a failure travels back as its reason."""

    def __init__(self, paths: list[Path], max_pixels: int | None) -> None:
        self.paths, self.max_pixels = paths, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, load_rgb(self.paths[i], max_pixels=self.max_pixels), None
        except ImageReadError as e:
            return i, None, e.reason


def translate_files(
    translator: Translator,
    input_path: Path | str,
    output_path: Path | str,
    *,
    direction: str = "AtoB",
    batch_size: int = 8,
    overwrite: bool = False,
    fmt: str = "png",
    size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    num_workers: int = 2,
    shard: tuple[int, int] = (0, 1),
    tile: int | None = None,
    overlap: int = 64,
    tile_statistics: str = "pooled",
) -> BatchReport:
    """Translate a file or a folder tree. Decoding runs in `num_workers` processes and saving in
    threads, overlapping the network; `shard=(rank, world_size)` takes every world_size-th file.
    `tile`, `overlap`, `tile_statistics`: as `Translator.translate` (large images are tiled)."""
    translator.network(direction)  # fail early on a direction the model lacks
    pairs, ignored = plan_outputs(Path(input_path), Path(output_path), fmt)
    rank, world_size = shard
    pairs = pairs[rank::world_size]
    report = BatchReport(ignored=ignored if rank == 0 else 0)
    todo = [(src, dst) for src, dst in pairs if overwrite or not dst.exists()]
    report.skipped = len(pairs) - len(todo)
    loader = DataLoader(_ImageFiles([src for src, _ in todo], max_pixels), batch_size=None,
                        num_workers=num_workers if len(todo) > 1 else 0)
    with tqdm(total=len(todo), desc="translate", unit="img", dynamic_ncols=True) as bar, \
            ThreadPoolExecutor(max_workers=2) as saver:
        pending, saves = [], []

        def flush() -> None:
            results = translator.translate([im for _, im in pending], direction=direction, size=size,
                                           batch_size=batch_size, tile=tile, overlap=overlap,
                                           tile_statistics=tile_statistics)
            for (i, image), result in zip(pending, results):
                if size is None and translator.tiling_for(*image.size, tile=tile, overlap=overlap):
                    report.tiled += 1
                saves.append((i, saver.submit(_save, result, todo[i][1])))
            pending.clear()

        for i, image, error in loader:
            if error is not None:
                report.failures.append((str(todo[i][0]), error))
                bar.update(1)
                continue
            pending.append((i, image))
            if len(pending) == batch_size:
                flush()
            bar.update(1)
        if pending:
            flush()
        for i, future in saves:
            try:
                future.result()
                report.converted += 1
            except (OSError, ValueError, Img2ImgError) as e:
                report.failures.append((str(todo[i][0]), f"cannot write {todo[i][1]}: {e}"))
    return report


def _save(image, path: Path) -> None:
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    atomic_write(path, lambda f: image.save(f, format=fmt, **kwargs))
