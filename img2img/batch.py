"""Batch translation of files and folders: resumable, atomic, and never stopped by one bad file."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from .data.images import DEFAULT_MAX_PIXELS, is_image_file, load_rgb
from .errors import Img2ImgError, ImageReadError
from .inference import Translator
from .io import atomic_write

FORMATS = {"png": ".png", "jpg": ".jpg", "same": None}


@dataclass
class BatchReport:
    converted: int = 0
    skipped: int = 0
    ignored: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"converted {self.converted}, skipped {self.skipped} (already done), failed {len(self.failures)}, "
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
) -> BatchReport:
    translator.generator(direction)  # fail early on a direction the model lacks
    pairs, ignored = plan_outputs(Path(input_path), Path(output_path), fmt)
    report = BatchReport(ignored=ignored)
    todo = []
    for src, dst in pairs:
        if dst.exists() and not overwrite:
            report.skipped += 1
        else:
            todo.append((src, dst))
    with tqdm(total=len(todo), desc="translate", unit="img", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), batch_size):
            chunk, images = [], []
            for src, dst in todo[start : start + batch_size]:
                try:
                    images.append(load_rgb(src, max_pixels=max_pixels))
                    chunk.append((src, dst))
                except ImageReadError as e:
                    report.failures.append((str(src), e.reason))
                    bar.update(1)
            if not chunk:
                continue
            results = translator.translate(images, direction=direction, size=size, batch_size=batch_size)
            for (src, dst), result in zip(chunk, results):
                try:
                    _save(result, dst)
                    report.converted += 1
                except (OSError, ValueError) as e:
                    report.failures.append((str(src), f"cannot write {dst}: {e}"))
                bar.update(1)
    return report


def _save(image, path: Path) -> None:
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    atomic_write(path, lambda f: image.save(f, format=fmt, **kwargs))
