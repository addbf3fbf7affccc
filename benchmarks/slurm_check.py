"""Slurm (issue 65) on a real one-node Slurm that this script starts on this machine (Debian's
slurm-wlm and munge, as the tests start it: tests/helpers/slurm.py). Run as root, alone on the
machine:

    python benchmarks/slurm_check.py [--steps 300] [--data ../shared/datasets/facades_tiny]

It prints three results:
1. a pix2pix run submitted with `img2img submit`, preempted twice by its signal and requeued,
   against the same run straight: the tensors compared, and how many differ;
2. the same run as 2 `srun` tasks and as 2 torchrun ranks (gloo): the same comparison;
3. the bundled maps model on the 100 maps val images: one process, then 2 srun tasks
   (1 thread each), images/s as each prints it.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import wait_for  # noqa: E402
from helpers.slurm import LocalSlurm, why_no_slurm  # noqa: E402

from img2img.persist.checkpoint import load_checkpoint  # noqa: E402

PYTHON = sys.executable
SHARED = ROOT.parent / "shared" / "datasets"
NET = ["--netG", "unet_64", "--size", "64", "--load-size", "72", "--ngf", "16", "--ndf", "16", "--num-workers", "0",
       "--log-every", "1", "--device", "cpu"]


def tensors_differing(a: dict, b: dict) -> tuple[int, int]:
    """(tensors compared, tensors not bitwise equal) over two checkpoints' whole state."""
    import torch

    compared = differing = 0

    def walk(x, y):
        nonlocal compared, differing
        if isinstance(x, dict):
            for k in x:
                walk(x[k], y[k])
        elif isinstance(x, (list, tuple)):
            for u, v in zip(x, y):
                walk(u, v)
        elif isinstance(x, torch.Tensor):
            compared += 1
            differing += not torch.equal(x, y)
    assert a.keys() == b.keys()
    for key in a:
        if key != "config":  # holds the run folder's path
            walk(a[key], b[key])
    return compared, differing


def checkpoint(folder: Path) -> dict:
    return load_checkpoint(folder / "checkpoints" / "latest.pt")


def field(cluster: LocalSlurm, job: str, name: str) -> str:
    found = re.search(rf"\b{name}=(\S*)", cluster.run("scontrol", "--oneliner", "show", "job", job, check=False).stdout)
    return found.group(1) if found else ""


def step_of(run: Path) -> tuple[str, int]:
    try:
        status = json.loads((run / "status.json").read_text())
        return status["state"], status["step"]
    except (OSError, ValueError, KeyError):
        return "", 0


def requeue_twice(cluster: LocalSlurm, work: Path, flags: list[str], steps: int) -> None:
    run = work / "requeued"
    out = subprocess.run([PYTHON, "-m", "img2img", "submit", "--out", str(run), *flags], env=cluster.env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    job = re.search(r"submitted job (\d+)", out).group(1)
    started = time.perf_counter()
    for restarts, at in ((0, steps // 3), (1, 2 * steps // 3)):
        wait_for(f"step {at}", lambda: step_of(run)[0] == "running" and step_of(run)[1] >= at
                 and field(cluster, job, "Restarts") == str(restarts), timeout_s=300)
        cluster.run("scancel", "--signal=USR1", job)
        wait_for("the requeue", lambda: field(cluster, job, "Restarts") == str(restarts + 1), timeout_s=300)
    wait_for("the end", lambda: field(cluster, job, "JobState") == "COMPLETED", timeout_s=300)
    seconds = time.perf_counter() - started
    stops = re.findall(r"preempted at step (\d+)", (run / "slurm.log").read_text())
    subprocess.run([PYTHON, "-m", "img2img", "train", *flags, "--out", str(work / "straight")], check=True,
                   capture_output=True, cwd=ROOT)
    compared, differing = tensors_differing(checkpoint(run), checkpoint(work / "straight"))
    print(f"1. requeue: job {job} preempted at steps {', '.join(stops)} and requeued twice, {steps} steps in "
          f"{seconds:.0f} s; against a straight run: {compared} tensors compared, {differing} differ")


def srun_against_torchrun(cluster: LocalSlurm, work: Path, flags: list[str]) -> None:
    env = {**cluster.env, "OMP_NUM_THREADS": "1"}
    subprocess.run(["srun", "--ntasks=2", PYTHON, "-m", "img2img", "train", *flags, "--out", str(work / "srun")],
                   env=env, check=True, capture_output=True, cwd=ROOT)
    subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "img2img",
                    "train", *flags, "--out", str(work / "torchrun")], env=env, check=True, capture_output=True, cwd=ROOT)
    compared, differing = tensors_differing(checkpoint(work / "srun"), checkpoint(work / "torchrun"))
    print(f"2. 2 srun tasks against 2 torchrun ranks (gloo): {compared} tensors compared, {differing} differ")


def sharded_translation(cluster: LocalSlurm, work: Path) -> None:
    model, images = ROOT / "checkpoints" / "maps_aerial2map" / "model.pt", SHARED / "maps" / "val"
    common = ["translate", "--checkpoint", str(model), "--engine", "torch", "--precision", "fp32", "--direction",
              "AtoB", str(images)]
    one = subprocess.run([PYTHON, "-m", "img2img", *common, str(work / "one")], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    two = subprocess.run(["srun", "--ntasks=2", PYTHON, "-m", "img2img", *common, str(work / "two")],
                         env={**cluster.env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    single = re.search(r"([\d.]+) images/s", one).group(1)
    print(f"3. translation of {len(list(images.iterdir()))} maps val images, bundled model, PyTorch fp32: one process "
          f"(2 threads) {single} images/s; 2 srun tasks (1 thread each):")
    for line in two.splitlines():
        if "images/s" in line:
            print("   " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data", default=str(SHARED / "facades_tiny"))
    args = parser.parse_args()
    if why_no_slurm():
        raise SystemExit(why_no_slurm())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cluster = LocalSlurm(work / "slurm").start()
        try:
            print(f"Slurm {cluster.run('sinfo', '--version').stdout.strip()}, one node of {cluster.cpus} CPUs")
            requeue_twice(cluster, work, ["--data", args.data, "--max-steps", str(args.steps), *NET], args.steps)
            srun_against_torchrun(cluster, work, ["--data", args.data, "--max-steps", "20", *NET])
            sharded_translation(cluster, work)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
