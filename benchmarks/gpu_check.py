"""The CUDA path's check, prepared for a lent GPU machine: one command, at most 8 minutes, one table.

    python benchmarks/gpu_check.py --data DIR --out OUT          # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --out OUT           # on a CPU, tiny sizes (make test runs it)

In order, each stage bounded by the deadline (a stage past it is reported as not run):
1. the CUDA tests (tests/training/test_cuda_path.py and test_speed.py, those with "cuda" in their names);
2. the speed ladder (`img2img bench`) for pix2pix, CycleGAN, CUT and UNSB at batch 1 and the best batch,
   across the speed switches;
3. the canonical code at the same batches (../shared/reference, or --reference), side by side;
4. profiles of pix2pix and CycleGAN at batch 1 and the best batch: kernel time against wall
   time, by kernel family, with operator, copy and kernel counts;
5. a real-data `img2img train` on DIR (a pix2pix folder with train/ and val/) over several
   epochs, its whole-run images/s against bench's at the same batch;
6. --deterministic: two runs from one seed and a resumed run, compared tensor by tensor (and
   two runs without the flag, for the figure it fixes);
7. torchrun (nccl on CUDA, one rank per GPU; gloo on the CPU);
8. the CUDA checkpoint from stage 5, translated on the CPU.

Writes at most 8 files to OUT: gpu_check.md (the table), gpu_check.json (every figure), and
the real-data run's metrics.csv. How to assemble what the machine needs in one folder is in
benchmarks/RESULTS.md ("The GPU check").
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from profile_step import our_step, profile_step  # noqa: E402

from img2img.cli import main as img2img  # noqa: E402
from img2img.config import SpeedConfig  # noqa: E402
from img2img.persist.checkpoint import load_checkpoint  # noqa: E402
from img2img.training.bench import BenchSettings, run_benchmark  # noqa: E402

# The targets of issue 29, per workload (images/s, or a ratio to the canonical code).
TARGETS = {("pix2pix", 1): "3x canonical", ("pix2pix", "best"): ">= 4500 img/s",
           ("cyclegan", "best"): ">= 200 img/s", ("cut", 1): "1.5x canonical"}
LADDER = {
    "default": SpeedConfig(),
    "fp32 eager": SpeedConfig(amp=False, channels_last=False),
    "bf16": SpeedConfig(amp=True, channels_last=False),
    "bf16 channels_last": SpeedConfig(amp=True, channels_last=True),
    "cuda graphs": SpeedConfig(cuda_graphs=True),
    "cuda graphs bf16": SpeedConfig(cuda_graphs=True, amp=True),
}


@dataclass
class Plan:
    """Sizes and lengths: the real ones, or tiny ones for the dry run on a CPU."""

    device: str
    size: int
    best_batch: dict[str, int]
    steps: int
    warmup: int
    train_steps: int
    train_batch: int
    workers: int
    canonical_extra: dict[str, list[str]] = field(default_factory=dict)
    # Our networks' sizes where they differ from the papers' (the dry run's are tiny).
    architecture: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def for_run(cls, dry: bool) -> "Plan":
        if dry:
            tiny = {"ngf": 8, "ndf": 8}
            return cls("cpu", 32, {"pix2pix": 2, "cyclegan": 2, "cut": 2, "unsb": 2}, 1, 0, 6, 2, 0,
                       {"cyclegan": ["--ngf", "8", "--ndf", "8", "--netG", "resnet_6blocks"]},
                       {"pix2pix": tiny, "cyclegan": {**tiny, "netG": "resnet_6blocks"},
                        "cut": {**tiny, "netG": "resnet_6blocks"}, "unsb": {**tiny, "netG": "resnet_6blocks"}})
        return cls("cuda", 256, {"pix2pix": 64, "cyclegan": 16, "cut": 8, "unsb": 4}, 15, 3, 400, 16, 8)



class Check:
    def __init__(self, out: Path, deadline: float, dry: bool) -> None:
        self.out, self.deadline, self.dry = out, deadline, dry
        self.rows: list[dict] = []
        self.figures: dict[str, object] = {}

    def row(self, stage: str, what: str, value: str, note: str = "") -> None:
        self.rows.append({"stage": stage, "what": what, "value": value, "note": note})
        print(f"[{stage}] {what}: {value} {note}".rstrip(), flush=True)

    def stage(self, name: str, fn) -> None:
        if time.monotonic() > self.deadline:
            self.row(name, "stage", "not run", "past the deadline")
            return
        started = time.monotonic()
        try:
            fn()
        except Exception as e:  # one stage failing must not lose the others' figures
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            self.row(name, "stage", "FAILED", last[:300])
            self.figures.setdefault("failures", []).append({"stage": name, "error": traceback.format_exc()})
        self.figures.setdefault("seconds", {})[name] = round(time.monotonic() - started, 1)

    def write(self) -> None:
        lines = ["| stage | what | value | note |", "|---|---|---|---|"]
        lines += [f"| {r['stage']} | {r['what']} | {r['value']} | {r['note']} |" for r in self.rows]
        table = "\n".join(lines)
        (self.out / "gpu_check.md").write_text(f"{describe_machine()}\n\n{table}\n")
        (self.out / "gpu_check.json").write_text(json.dumps({"machine": describe_machine(), "rows": self.rows,
                                                             "figures": self.figures}, indent=1, default=str))
        print("\n" + table)


def describe_machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{gpu}; torch {torch.__version__}; {os.cpu_count()} CPU cores"


def quiet(fn, *args):
    """Run an img2img command in this process with its output kept out of the table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = fn(*args)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    if code:
        raise RuntimeError(err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {code}")


def run(cmd: list[str], timeout: float, env: dict | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1), cwd=ROOT,
                          env={**os.environ, **(env or {})})
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[:4])}... exit {done.returncode}: {' | '.join(tail)}")
    return done.stdout


def cuda_tests(c: Check, plan: Plan) -> None:
    tests = ["tests/training/test_cuda_path.py", "tests/training/test_speed.py"]
    if c.dry:  # the suite is what runs this: check the selection still collects
        out = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tests],
                  c.deadline - time.monotonic())
        # Node ids, or "file: count" lines when pytest is configured quieter.
        collected = sum(1 if "::" in line else int(line.rsplit(": ", 1)[1]) for line in out.splitlines()
                        if "::" in line or re.fullmatch(r"\S+\.py: \d+", line.strip()))
        c.row("tests", "collected (dry run)", f"{collected} tests")
        return
    out = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", *tests],
              c.deadline - time.monotonic())
    c.row("tests", "CUDA tests", out.strip().splitlines()[-1])


def ladder(c: Check, plan: Plan) -> None:
    results = c.figures.setdefault("ladder", {})
    for model in ("pix2pix", "cyclegan", "cut", "unsb"):
        for batch in sorted({1, plan.best_batch[model]} | ({plan.train_batch} if model == "pix2pix" else set())):
            for name, speed in LADDER.items():
                if time.monotonic() > c.deadline:
                    return
                graphs = speed.cuda_graphs
                if graphs and (plan.device == "cpu" or model in ("cut", "unsb")):
                    continue  # refused there: host draws (training/cuda_graph.py)
                if name != "default" and (batch not in (1, plan.best_batch[model])
                                          or c.dry and (name != "bf16" or model != "pix2pix" or batch != 1)):
                    continue
                settings = BenchSettings(model=model, size=plan.size, batch_size=batch, steps=plan.steps,
                                         warmup=plan.warmup, device=plan.device, speed=speed,
                                         architecture=plan.architecture.get(model, {}))
                try:
                    r = run_benchmark(settings, log=lambda _: None)
                except Exception as e:
                    c.row("ladder", f"{model} b{batch} {name}", "FAILED", str(e).splitlines()[0][:200])
                    continue
                results[f"{model} b{batch} {name}"] = r
                c.row("ladder", f"{model} b{batch} {name}", f"{r['images_per_s']:.1f} img/s",
                      f"{r['sec_per_iter'] * 1e3:.2f} ms, {r['peak_mem_mb']:.0f} MB, {r['percent_of_peak']:.0f}% of "
                      f"{r['peak_precision']} peak")
                if plan.device == "cuda":
                    torch.cuda.empty_cache()


def canonical(c: Check, plan: Plan, reference: Path) -> None:
    script = reference / "bench_reference.py"
    if not script.is_file():
        c.row("canonical", "reference code", "not run", f"no {script}")
        return
    results = c.figures.setdefault("canonical", {})
    workloads = (("pix2pix", "jz", "pix2pix"), ("cyclegan", "jz", "cycle_gan"), ("cut", "cut", "cut"))
    if c.dry:  # one run shows the command still works; the canonical U-Nets need 128 px or more
        workloads = workloads[1:2]
    for model, impl, name in workloads:
        for batch in (1,) if c.dry else (1, plan.best_batch[model]):
            if time.monotonic() > c.deadline:
                return
            cmd = [sys.executable, str(script), "--impl", impl, "--model", name, "--size",
                   str(plan.size), "--batch", str(batch), "--steps", str(max(plan.steps, 1)),
                   "--warmup", str(plan.warmup), "--device", plan.device, "--threads", str(torch.get_num_threads()),
                   *plan.canonical_extra.get(model, [])]
            try:
                r = json.loads(run(cmd, c.deadline - time.monotonic()).strip().splitlines()[-1])
            except Exception as e:
                c.row("canonical", f"{model} b{batch}", "FAILED", str(e)[:200])
                continue
            results[f"{model} b{batch}"] = r
            ours = c.figures.get("ladder", {}).get(f"{model} b{batch} default")
            ratio = f"ours (default) {ours['images_per_s'] / r['images_per_s']:.2f}x" if ours else ""
            if c.dry:
                ratio = "tiny sizes, not comparable"
            c.row("canonical", f"{model} b{batch}", f"{r['images_per_s']:.1f} img/s", ratio)
    for (model, batch), target in TARGETS.items():
        b = plan.best_batch[model] if batch == "best" else batch
        ours = [v["images_per_s"] for k, v in c.figures.get("ladder", {}).items() if k.startswith(f"{model} b{b} ")]
        ref = results.get(f"{model} b{b}")
        if ours:
            best = max(ours)
            vs = f", {best / ref['images_per_s']:.2f}x canonical" if ref else ""
            c.row("targets", f"{model} batch {b}: {target}", f"{best:.1f} img/s{vs}", "fastest rung")


def profiles(c: Check, plan: Plan) -> None:
    device = torch.device(plan.device)
    results = c.figures.setdefault("profiles", {})
    for model in ("pix2pix",) if c.dry else ("pix2pix", "cyclegan"):
        for batch in (1,) if c.dry else (1, plan.best_batch[model]):
            if time.monotonic() > c.deadline:
                return
            step = our_step(model, plan.size, batch, device, architecture=plan.architecture.get(model, {}))
            p = profile_step(step, device, steps=max(1, plan.steps // 5))
            results[f"{model} b{batch}"] = p.row()
            top = ", ".join(f"{k} {v:.0f}%" for k, v in list(p.by_family.items())[:4])
            c.row("profile", f"{model} b{batch}", f"{p.kernel_ms:.2f} ms kernels / {p.wall_ms:.2f} ms wall",
                  f"{top}; {p.kernels} kernels, {p.top_level_ops}/{p.all_ops} ops, {p.copies} copy_")
            if device.type == "cuda":
                torch.cuda.empty_cache()


def make_tiny_paired(root: Path, n: int = 8, size: int = 32) -> Path:
    """A small pix2pix folder (A|B side by side), for the dry run."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = (torch.rand(3, size // 8, size // 8, generator=g) * 255).byte()
            a = torch.nn.functional.interpolate(a[None].float(), size=size, mode="bilinear")[0].byte()
            pair = torch.cat([a, 255 - a], dim=2).permute(1, 2, 0).numpy()
            Image.fromarray(pair).save(root / split / f"{i}.png")
    return root


def whole_run_images_per_s(metrics: Path, batch: int) -> float:
    """Images over seconds across every window after the first (warm-up), epoch ends included."""
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("images_per_s")]
    images = seconds = 0.0
    for previous, row in zip(rows, rows[1:]):
        n = (int(row["step"]) - int(previous["step"])) * batch
        images += n
        seconds += n / float(row["images_per_s"])
    return images / seconds if seconds else float("nan")


def train_args(plan: Plan, data: Path, out: Path) -> list[str]:
    tiny = ["--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--size", "32", "--load-size", "36"] if plan.device == "cpu" \
        else []
    return ["train", "--data", str(data), "--out", str(out), "--device", plan.device, "--batch-size",
            str(plan.train_batch), "--num-workers", str(plan.workers), "--fid-every", "0", "--sample-every", "0",
            *tiny]


def real_data(c: Check, plan: Plan, data: Path, work: Path) -> None:
    out = work / "train"
    every = 10 if plan.device == "cuda" else 2
    quiet(img2img, [*train_args(plan, data, out), "--max-steps", str(plan.train_steps), "--log-every", str(every)])
    shutil.copy(out / "metrics.csv", c.out / "metrics.csv")
    rate = whole_run_images_per_s(out / "metrics.csv", plan.train_batch)
    bench = c.figures.get("ladder", {}).get(f"pix2pix b{plan.train_batch} default")
    c.figures["real_data"] = {"images_per_s": rate, "bench_images_per_s": bench and bench["images_per_s"]}
    share = f"{100 * rate / bench['images_per_s']:.0f}% of bench (target >= 90%)" if bench else "no bench figure"
    c.row("real data", f"pix2pix train b{plan.train_batch}, {plan.train_steps} steps", f"{rate:.1f} img/s", share)


def networks_differing(a: Path, b: Path) -> tuple[int, int]:
    one = load_checkpoint(a)["method"]["networks"]
    two = load_checkpoint(b)["method"]["networks"]
    pairs = [(one[n][k], two[n][k]) for n in one for k in one[n]]
    return sum(not torch.equal(x, y) for x, y in pairs), len(pairs)


def deterministic(c: Check, plan: Plan, data: Path, work: Path) -> None:
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    steps = "8"
    try:
        for flag in ([], ["--deterministic"]):
            runs = []
            for name in ("one", "two"):
                out = work / f"det{len(flag)}_{name}"
                quiet(img2img, [*train_args(plan, data, out), "--max-steps", steps, "--log-every", "0", *flag])
                runs.append(out / "checkpoints" / "latest.pt")
            if flag:
                out = work / "det1_resumed"
                quiet(img2img, [*train_args(plan, data, out), "--max-steps", "4", "--log-every", "0", *flag])
                quiet(img2img, [*train_args(plan, data, out), "--max-steps", steps, "--log-every", "0",
                                "--resume", "auto", *flag])
                runs.append(out / "checkpoints" / "latest.pt")
            differ, total = networks_differing(runs[0], runs[1])
            label = "--deterministic" if flag else "default"
            c.row("deterministic", f"{label}: two runs", f"{differ} of {total} tensors differ")
            if flag:
                differ, total = networks_differing(runs[0], runs[2])
                c.row("deterministic", f"{label}: straight vs resumed", f"{differ} of {total} tensors differ")
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic = saved[1]


def torchrun(c: Check, plan: Plan, data: Path, work: Path) -> None:
    gpus = torch.cuda.device_count() if plan.device == "cuda" else 0
    if plan.device == "cuda" and gpus < 2:
        c.row("torchrun", "nccl", "not run", "one GPU: nccl needs a GPU per rank")
        return
    ranks = gpus or 2
    out = work / "torchrun"
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", "-m", "img2img",
         *train_args(plan, data, out), "--max-steps", "4", "--log-every", "2"], c.deadline - time.monotonic())
    rows = [r for r in csv.DictReader((out / "metrics.csv").open()) if r.get("kind") != "eval"]
    c.row("torchrun", f"{'nccl' if gpus else 'gloo'}, {ranks} ranks", f"step {rows[-1]['step']} reached",
          f"{float(rows[-1]['images_per_s']):.1f} img/s")


def cpu_translate(c: Check, plan: Plan, data: Path, work: Path) -> None:
    checkpoint = work / "train" / "checkpoints" / "latest.pt"
    out = work / "translated"
    quiet(img2img, ["translate", "--checkpoint", str(checkpoint), "--device", "cpu", "--num-workers", "0",
                    "--engine", "torch", str(data / "val"), str(out)])
    count = len(list(out.iterdir()))
    c.row("cpu translate", f"{plan.device} checkpoint on the CPU", f"{count} images translated")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the (at most 8) result files go")
    parser.add_argument("--data", type=Path, help="a pix2pix folder with train/ and val/ (e.g. a maps subset)")
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference",
                        help="the canonical code's folder, with bench_reference.py")
    parser.add_argument("--minutes", type=float, default=7.5, help="deadline for starting a stage")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script runs")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here: use --dry-run on a CPU")
    plan = Plan.for_run(args.dry_run)
    args.out.mkdir(parents=True, exist_ok=True)
    c = Check(args.out, time.monotonic() + 60 * args.minutes, args.dry_run)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        data = args.data or (make_tiny_paired(work / "data") if args.dry_run else None)
        if data is None:
            parser.error("--data: a pix2pix folder (train/, val/) for the real-data run")
        c.stage("tests", lambda: cuda_tests(c, plan))
        c.stage("ladder", lambda: ladder(c, plan))
        c.stage("canonical", lambda: canonical(c, plan, args.reference))
        c.stage("profile", lambda: profiles(c, plan))
        c.stage("real data", lambda: real_data(c, plan, data, work))
        c.stage("cpu translate", lambda: cpu_translate(c, plan, data, work))
        c.stage("torchrun", lambda: torchrun(c, plan, data, work))
        c.stage("deterministic", lambda: deterministic(c, plan, data, work))
    c.write()
    return 1 if any(r["value"] == "FAILED" for r in c.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
