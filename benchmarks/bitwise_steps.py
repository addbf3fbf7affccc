"""Whether a change leaves training bitwise unchanged: record each method's losses at every step
and every tensor of its last checkpoint, at one commit, then compare with another.

    python benchmarks/bitwise_steps.py record /tmp/before.pt    # at the old commit
    python benchmarks/bitwise_steps.py record /tmp/after.pt     # at the new one
    python benchmarks/bitwise_steps.py compare /tmp/before.pt /tmp/after.pt

Each method trains from the CLI at its defaults (pix2pix: the paper recipe, unet_256 at 256 px),
50 steps on the CPU, on ../shared/datasets (maps for paired data, monet2photo for unpaired);
the unpaired methods and colourisation at 64 px to keep the run short.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

DATASETS = Path(os.environ.get("IMG2IMG_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
STEPS = 50
COMMON = ["--max-steps", str(STEPS), "--log-every", "1", "--num-workers", "0", "--device", "cpu", "--fid-every", "0",
          "--sample-every", "0", "--seed", "3"]
RUNS = {
    "pix2pix": ["--model", "pix2pix", "--data", str(DATASETS / "maps")],
    "cyclegan": ["--model", "cyclegan", "--data", str(DATASETS / "monet2photo"), "--size", "64", "--load-size", "72"],
    "cut": ["--model", "cut", "--data", str(DATASETS / "monet2photo"), "--size", "64", "--load-size", "72"],
    "fastcut": ["--model", "fastcut", "--data", str(DATASETS / "monet2photo"), "--size", "64", "--load-size", "72"],
    "colorization": ["--model", "colorization", "--data", str(DATASETS / "monet2photo" / "trainB"), "--size", "64",
                     "--load-size", "72"],
}


def flat_tensors(value, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint, by its path of keys."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    out = {}
    for key, inner in items:
        out.update(flat_tensors(inner, f"{prefix}/{key}"))
    return out


def record(path: Path, methods: list[str]) -> None:
    result = {}
    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            subprocess.run([sys.executable, "-m", "img2img", "train", *RUNS[method], *COMMON, "--out", str(out)],
                           check=True, stdout=subprocess.DEVNULL)
            with open(out / "metrics.csv") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step")]
            state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
            state.pop("config")  # compared as config.json is: the values, not the layout of the dict
            result[method] = {"losses": [{k: v for k, v in r.items() if k not in ("images_per_s",)} for r in rows],
                              "tensors": flat_tensors(state)}
        print(f"{method}: {len(result[method]['losses'])} rows, {len(result[method]['tensors'])} tensors")
    torch.save(result, path)


def compare(before: Path, after: Path) -> int:
    a, b = torch.load(before, weights_only=True), torch.load(after, weights_only=True)
    failures = 0
    def values(rows):  # the measurements; "kind" tags a row (train or eval) since issue 60
        return [{k: v for k, v in r.items() if k != "kind"} for r in rows]

    for method in a:
        losses_same = values(a[method]["losses"]) == values(b[method]["losses"])
        ta, tb = a[method]["tensors"], b[method]["tensors"]
        differing = [k for k in ta if k not in tb or not torch.equal(ta[k], tb[k])] + [k for k in tb if k not in ta]
        ok = losses_same and not differing
        failures += not ok
        print(f"{method}: {len(a[method]['losses'])} loss rows {'identical' if losses_same else 'DIFFER'}; "
              f"{len(ta)} checkpoint tensors, {len(differing)} differ{': ' + ', '.join(differing[:5]) if differing else ''}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record")
    r.add_argument("path", type=Path)
    r.add_argument("--methods", nargs="+", default=list(RUNS), choices=list(RUNS))
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.path, args.methods)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
