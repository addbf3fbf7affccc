"""The README and docs/: every relative link resolves, every img2img command in a code block
names a subcommand and flags that exist (parsed with the CLI's own parser), and every path such
a command reads is in a fresh clone or made by a documented command."""
from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from helpers import ROOT

from img2img.app.main import build_parser as build_app_parser
from img2img.cli import build_parser, join_signed_values

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(text: str) -> list[str]:
    """The shell blocks of a Markdown page: ```bash, ```sh, ```console and unlabelled ones."""
    blocks, lines, shell, inside = [], [], False, False
    for line in text.splitlines():
        if line.startswith("```"):
            if inside and shell:
                blocks.append("\n".join(lines) + "\n")
            inside, shell, lines = not inside, line[3:].strip() in ("bash", "sh", "console", ""), []
        elif inside:
            lines.append(line)
    return blocks


def commands(block: str) -> list[list[str]]:
    """The img2img invocations of a shell block: continuation lines joined, comments dropped,
    `torchrun ... -m img2img` and `python -m img2img` included; here-documents skipped."""
    found, heredoc = [], None
    for line in block.replace("\\\n", " ").splitlines():
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if "<<" in line:
            heredoc = line.split("<<", 1)[1].strip().strip("'\"")
            continue
        if not re.search(r"(^|\s)img2img(\s|$)", line):
            continue
        words = shlex.split(line, comments=True)
        if "img2img" in words:
            start = words.index("img2img")
            if start == 0 or words[start - 1] == "-m":
                found.append(words[start + 1 :])
    return found


def test_the_readme_is_a_front_page_of_at_most_about_200_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 210


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_image_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name}: {target}"


def parse(words: list[str]):
    """The namespace `img2img WORDS` parses into (`img2img app` with the app's own parser)."""
    if words[:1] == ["app"]:
        return build_app_parser().parse_args(words[1:])
    return build_parser().parse_args(join_signed_values(words))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_names_a_subcommand_and_flags_that_exist(page):
    seen = 0
    for block in code_blocks(page.read_text()):
        for words in commands(block):
            try:
                parse(words)
            except SystemExit:
                pytest.fail(f"{page.name}: img2img {' '.join(words)}")
            seen += 1
    if page.name in ("README.md", "training.md", "translate.md"):
        assert seen > 0, f"{page.name}: no img2img command found"


def test_the_command_check_catches_a_flag_that_does_not_exist():
    parser = build_parser()
    (words,) = commands("img2img train --data x --no-such-flag 3\n")
    with pytest.raises(SystemExit):
        parser.parse_args(words)


# Command arguments that name a path the command reads, and those that name one it makes.
READS = ("data", "checkpoint", "input", "resume", "config", "calibration", "a", "b", "data.val_dir", "train.fid_val")
MAKES = ("out", "output", "dst")


def documented_paths() -> tuple[list[tuple[str, str]], set[str]]:
    """(page, path) of every path a documented command reads, and every path one makes
    (`datasets download NAME` makes ROOT/NAME)."""
    reads, made = [], set()
    for page in PAGES:
        for block in code_blocks(page.read_text()):
            for words in commands(block):
                args = vars(parse(words))
                if words[:2] == ["datasets", "download"]:
                    made.add(f"{args['root'] or 'datasets'}/{args['name']}")
                made |= {str(args[k]).rstrip("/") for k in MAKES if isinstance(args.get(k), str)}
                reads += [(page.name, str(args[k]).rstrip("/")) for k in READS if isinstance(args.get(k), str)]
    return reads, made


def in_a_fresh_clone(path: str) -> bool:
    if not (ROOT / path).resolve().is_relative_to(ROOT):
        return False  # beside the clone, not in it
    tracked = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, capture_output=True, text=True)
    return bool(tracked.stdout.strip()) if tracked.returncode == 0 else (ROOT / path).exists()


def test_every_path_a_command_reads_is_in_a_fresh_clone_or_made_by_a_documented_command():
    """Paths under the clone's own folders (or outside it) must be there; other names (photos/,
    scans/) are the reader's own."""
    reads, made = documented_paths()
    ours = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} | {"runs", ".."}
    checked = [(page, path) for page, path in reads if path.split("/")[0] in ours]
    assert len(checked) > 10
    missing = [f"{page}: {path}" for page, path in checked
               if not in_a_fresh_clone(path) and not any(path == m or path.startswith(m + "/") for m in made)]
    assert not missing


def test_no_user_facing_page_points_outside_the_clone():
    assert not [page.name for page in PAGES if "../shared" in page.read_text()]


def test_the_path_check_tells_a_clone_file_from_one_outside_it():
    assert in_a_fresh_clone("checkpoints/maps_aerial2map/model.pt")
    assert not in_a_fresh_clone("../shared/datasets/maps") and not in_a_fresh_clone("datasets/maps")
