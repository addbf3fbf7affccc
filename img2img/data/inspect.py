"""What a dataset folder holds, before anything trains: its layout, the files of each split, each
domain's pixel format, the method that fits it, and the files training would skip, and why.
`img2img inspect DIR` prints it; the app's Train tab shows the same words. Only file headers are
read (no pixels are decoded), so a report of a thousand files takes a second."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImageReadError, Img2ImgError
from ..io.pixel_format import DTYPE_RANGES
from ..io.readers import image_shape, is_image_file, list_images
from .folders import val_split_dir

# Files the report names but that are not data (a zip made on a Mac, a file manager's notes).
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
IGNORED_FOLDERS = {"__MACOSX", ".ipynb_checkpoints"}
# A folder of pictures is A|B pairs when this share of its readable images is exactly twice as
# wide as high, to a pixel (two square halves, as every pix2pix dataset ships); otherwise photos.
SIDE_BY_SIDE_SHARE = 0.9
SAMPLES_SHOWN = 4


@dataclass
class Split:
    name: str  # train, val
    folders: tuple[Path, ...]
    count: int  # samples (pairs, or images per domain for unpaired data)
    counts: tuple[int, ...] = ()  # unpaired: per domain


@dataclass
class DataReport:
    root: Path
    kind: str  # a data layout of data.builders.LAYOUTS: paired, unpaired, colour
    layout: str  # in words
    methods: tuple[str, ...]  # the methods that fit it, the suggested one first
    splits: list[Split]
    formats: list[str]  # a line per domain
    samples: list[tuple[Path, ...]]  # a few (A, B) pairs, A|B files or photos, for thumbnails
    skipped: list[str] = field(default_factory=list)  # "file: why"

    @property
    def method(self) -> str:
        """The suggested method."""
        return self.methods[0]

    @property
    def train_count(self) -> int:
        return next((s.count for s in self.splits if s.name == "train"), 0)

    def text(self) -> str:
        lines = [f"{self.root}: {self.layout}", f"suggested method: {self.method}" + (f" (or {', '.join(self.methods[1:])})" if self.methods[1:] else "")]
        for split in self.splits:
            where = " + ".join(str(f.relative_to(self.root)) if f != self.root else "." for f in split.folders)
            if split.counts:
                lines.append(f"{split.name}: {split.counts[0]} A and {split.counts[1]} B images ({where})")
            else:
                lines.append(f"{split.name}: {split.count} {'pairs' if self.kind == 'paired' else 'photos'} ({where})")
        if not any(s.name == "val" for s in self.splits):
            lines.append("val: none (sample grids come from the train split; FID needs --fid-val)")
        lines += self.formats
        if self.skipped:
            lines.append(f"skipped when training: {len(self.skipped)} file{'s' if len(self.skipped) > 1 else ''}")
            lines += [f"  {s}" for s in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


def inspect_dataset(root: Path | str) -> DataReport:
    """The report of dataset folder `root`, in any layout `img2img train` takes; an Img2ImgError
    when it holds no layout (no images, or two layouts mixed)."""
    root = Path(root)
    if not root.is_dir():
        raise Img2ImgError(f"{root}: not a folder")
    has = {name: (root / name).is_dir() for name in ("trainA", "trainB", "train")}
    if has["trainA"] or has["trainB"]:
        if not (has["trainA"] and has["trainB"]):
            present, absent = ("trainA", "trainB") if has["trainA"] else ("trainB", "trainA")
            raise Img2ImgError(f"{root}: has {present}/ but no {absent}/; unpaired data needs both")
        _refuse_mixed(root, "trainA/ + trainB/ (unpaired)", loose=list_images(root), train=has["train"])
        return _unpaired(root)
    split = root / "train" if has["train"] else root
    if has["train"] and list_images(root):
        raise Img2ImgError(f"{root}: mixed layouts: images loose in the folder and a train/ folder; keep one")
    if (split / "A").is_dir() or (split / "B").is_dir():
        if list_images(split):
            raise Img2ImgError(f"{split}: mixed layouts: A|B images loose in the folder and A/ + B/ folders; "
                               "keep one")
        return _paired_folders(root, split)
    if not list_images(split):
        raise Img2ImgError(f"{root}: no images found: expected trainA/ + trainB/ (unpaired), train/ or the folder "
                           "itself with A|B images or A/ + B/ folders (paired), or photos (colourisation)")
    return _one_folder(root, split)


def _refuse_mixed(root: Path, layout: str, loose: list[Path], train: bool) -> None:
    if loose or train:
        other = "images loose in the folder" if loose else "a train/ folder"
        raise Img2ImgError(f"{root}: mixed layouts: {layout} and {other}; keep one")


def _headers(files: list[Path], skipped: list[str]) -> dict[Path, tuple[int, int, int]]:
    """(height, width, channels) of each readable file; the others are added to `skipped`."""
    shapes = {}
    for path in files:
        try:
            shapes[path] = image_shape(path)
        except ImageReadError as e:
            skipped.append(f"{path}: {e.reason}")
    return shapes


def _not_images(folders: list[Path]) -> list[str]:
    out = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not is_image_file(path) and path.name not in IGNORED_NAMES:
                out.append(f"{path}: not an image file (ignored)")
    return out


def _format_line(label: str, shapes: dict[Path, tuple[int, int, int]], halves: bool = False) -> str:
    if not shapes:
        return f"{label}: no readable image"
    path, (h, w, c) = next(iter(shapes.items()))
    dtype = _dtype_of(path)
    values = f"{DTYPE_RANGES[dtype][0]:g}..{DTYPE_RANGES[dtype][1]:g}" if dtype in DTYPE_RANGES else \
        "range read at training start (0.5/99.5 percentiles)"
    sizes = {(s[1] // 2 if halves else s[1], s[0]) for s in shapes.values()}
    size = f"{w // 2 if halves else w}x{h}" if len(sizes) == 1 else f"{len(sizes)} sizes"
    return f"{label}: {c} channel{'s' if c > 1 else ''} {dtype} {values}, {size}, e.g. {path.name}"


def _dtype_of(path: Path) -> str:
    """The stored pixel type: read from the first file of a domain only."""
    from ..io.readers import read_image

    try:
        return str(read_image(path).array.dtype)
    except ImageReadError:
        return "unknown"


def _unpaired(root: Path) -> DataReport:
    skipped: list[str] = []
    folders = [root / "trainA", root / "trainB"]
    files = [list_images(f) for f in folders]
    shapes = [_headers(found, skipped) for found in files]
    for folder, found in zip(folders, shapes):
        if not found:
            raise Img2ImgError(f"{folder}: no readable images")
    splits = [Split("train", tuple(folders), max(map(len, shapes)), tuple(map(len, files)))]
    for a, b in (("testA", "testB"), ("valA", "valB")):
        if (root / a).is_dir() and (root / b).is_dir():
            splits.append(Split("val", (root / a, root / b), 0, (len(list_images(root / a)), len(list_images(root / b)))))
            break
    samples = list(zip(list(shapes[0])[:SAMPLES_SHOWN], list(shapes[1])[:SAMPLES_SHOWN]))
    return DataReport(root, "unpaired", "trainA/ + trainB/ folders (unpaired)", ("cyclegan", "cut", "fastcut", "unsb"),
                      splits, [_format_line("domain A", shapes[0]), _format_line("domain B", shapes[1])], samples,
                      skipped + _not_images(folders))


def _paired_folders(root: Path, split: Path) -> DataReport:
    skipped: list[str] = []
    a_files = {p.stem: p for p in list_images(split / "A")} if (split / "A").is_dir() else {}
    b_files = {p.stem: p for p in list_images(split / "B")} if (split / "B").is_dir() else {}
    if not a_files or not b_files:
        raise Img2ImgError(f"{split}: paired A/ + B/ folders need images in both A/ and B/")
    for stem in sorted(a_files.keys() ^ b_files.keys()):
        side, other = ("A", "B") if stem in a_files else ("B", "A")
        skipped.append(f"{(a_files if side == 'A' else b_files)[stem]}: no file named {stem}.* in {other}/")
    common = sorted(a_files.keys() & b_files.keys())
    shapes_a = _headers([a_files[s] for s in common], skipped)
    shapes_b = _headers([b_files[s] for s in common], skipped)
    for stem in common:
        a, b = shapes_a.get(a_files[stem]), shapes_b.get(b_files[stem])
        if a and b and a[:2] != b[:2]:
            skipped.append(f"{b_files[stem]}: size {b[1]}x{b[0]} differs from its A image ({a[1]}x{a[0]})")
    if not shapes_a or not shapes_b:
        raise Img2ImgError(f"{split}: no readable pair in A/ and B/")
    splits = [Split("train", (split / "A", split / "B"), len(common))]
    val = val_split_dir(root) if split != root else None
    if val and (val / "A").is_dir() and (val / "B").is_dir():
        splits.append(Split("val", (val / "A", val / "B"), len(list_images(val / "A"))))
    samples = [(a_files[s], b_files[s]) for s in common[:SAMPLES_SHOWN]]
    return DataReport(root, "paired", "paired A/ + B/ folders (same-named files)", ("pix2pix",), splits,
                      [_format_line("domain A", shapes_a), _format_line("domain B", shapes_b)], samples,
                      skipped + _not_images([split / "A", split / "B"]))


def _one_folder(root: Path, split: Path) -> DataReport:
    """A|B images side by side, or photos for colourisation: told apart by their shapes."""
    skipped: list[str] = []
    files = list_images(split)
    shapes = _headers(files, skipped)
    if not shapes:
        raise Img2ImgError(f"{split}: none of its {len(files)} images is readable")
    double = sum(abs(w - 2 * h) <= 1 for h, w, _ in shapes.values())  # an odd width is a broken pair
    val = val_split_dir(root) if split != root else None
    val_count = len(list_images(val)) if val else 0
    splits = [Split("train", (split,), len(shapes))]  # less the broken pairs, below, for A|B images
    if val_count:
        splits.append(Split("val", (val,), val_count))
    samples = [(p,) for p in list(shapes)[:SAMPLES_SHOWN]]
    if double >= SIDE_BY_SIDE_SHARE * len(shapes):
        for path, (h, w, _) in shapes.items():
            if w % 2:
                skipped.append(f"{path}: width {w} is odd, so it cannot be split into A|B halves")
        splits[0].count = len(shapes) - sum(w % 2 for _, w, _ in shapes.values())
        return DataReport(root, "paired", "A|B images side by side (paired, A on the left)", ("pix2pix",), splits,
                          [_format_line("domain A", shapes, halves=True), _format_line("domain B", shapes, halves=True)], samples,
                          skipped + _not_images([split]))
    grey = sum(c == 1 for _, _, c in shapes.values())
    formats = [_format_line("photos", shapes),
               "domain A: the photos' lightness L (1 channel); domain B: their colour ab (2 channels)"
               + (f"; {grey} are grey, and teach that colour is grey" if grey else "")]
    return DataReport(root, "colour", "a folder of photos (not A|B pairs: their widths are not twice their heights)",
                      ("colorization",), splits, formats, samples, skipped + _not_images([split]))
