"""Training and translation under a real Slurm (Debian's slurm-wlm and munge, started by the
fixture on this machine as a one-node cluster of its CPUs): submitting, preemption and requeue,
2-task srun DDP against torchrun, the Train tab's runner, and a sharded translation."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_PIX2PIX, compare_states, make_checkpoint, make_paired, random_image, wait_for
from helpers.slurm import LocalSlurm, why_no_slurm

from img2img.persist.checkpoint import load_checkpoint
from img2img.service.training import TrainingService
from img2img.slurm import JobState, SlurmOptions

pytestmark = [pytest.mark.slow, pytest.mark.skipif(why_no_slurm() is not None, reason=why_no_slurm() or "")]

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    request.addfinalizer(slurm.stop)
    return slurm


def one_thread(env: dict) -> dict:
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def job_field(cluster: LocalSlurm, job: str, name: str) -> str:
    out = cluster.run("scontrol", "--oneliner", "show", "job", job, check=False).stdout
    found = re.search(rf"\b{name}=(\S*)", out)
    return found.group(1) if found else ""


def status(folder: Path) -> dict:
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def without_run_paths(state: dict) -> dict:
    for key in ("out", "max_steps"):
        state["config"]["train"].pop(key)
    return state


def test_a_run_preempted_and_requeued_twice_ends_bit_for_bit_as_a_straight_run(cluster, tmp_path):
    data = make_paired(tmp_path / "data", n_train=6)
    flags = ["--data", str(data), "--max-steps", "300", *TINY_PIX2PIX]
    run = tmp_path / "preempted"
    submitted = subprocess.run([PYTHON, "-m", "img2img", "submit", "--out", str(run), *flags],
                               env=one_thread(cluster.env), capture_output=True, text=True, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = re.search(r"submitted job (\d+)", submitted.stdout).group(1)
    # The straight run trains while the job waits for Slurm.
    straight_run = subprocess.Popen([PYTHON, "-m", "img2img", "train", *flags, "--out", str(tmp_path / "straight")],
                                    env=one_thread(dict(os.environ)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    script = (run / "job.sbatch").read_text()
    assert "#SBATCH --signal=USR1@300" in script and "#SBATCH --requeue" in script
    for restarts, at_step in ((0, 40), (1, 150)):
        wait_for(f"step {at_step}", lambda: status(run).get("state") == "running" and status(run)["step"] >= at_step
                 and job_field(cluster, job, "Restarts") == str(restarts))
        cluster.run("scancel", "--signal=USR1", job)  # what --signal=USR1@300 sends before a time limit
        wait_for("the requeue", lambda: job_field(cluster, job, "Restarts") == str(restarts + 1))
    wait_for("the end", lambda: job_field(cluster, job, "JobState") == "COMPLETED", timeout_s=120)
    log = (run / "slurm.log").read_text()
    assert log.count("preempted at step") == 2 and log.count("resumed from") == 2, log[-3000:]
    assert status(run)["state"] == "finished" and status(run)["step"] == 300

    assert straight_run.wait(timeout=120) == 0, straight_run.stderr.read()
    straight = without_run_paths(load_checkpoint(tmp_path / "straight/checkpoints/latest.pt"))
    requeued = without_run_paths(load_checkpoint(run / "checkpoints/latest.pt"))
    assert compare_states(straight, requeued) > 10


def test_two_srun_tasks_train_bit_for_bit_as_two_torchrun_ranks(cluster, tmp_path):
    data = make_paired(tmp_path / "data", n_train=6)
    flags = ["train", "--data", str(data), "--max-steps", "4", *TINY_PIX2PIX]
    srun = subprocess.run(["srun", "--ntasks=2", PYTHON, "-m", "img2img", *flags, "--out", str(tmp_path / "srun")],
                          env=one_thread(cluster.env), capture_output=True, text=True, timeout=120)
    assert srun.returncode == 0, srun.stderr[-3000:]
    assert "2 ranks on cpu" in srun.stdout + srun.stderr
    torchrun = subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                               "img2img", *flags, "--out", str(tmp_path / "torchrun")],
                              env=one_thread({"PATH": "/usr/bin:/bin"}), capture_output=True, text=True, timeout=120)
    assert torchrun.returncode == 0, torchrun.stderr[-3000:]
    a, b = (without_run_paths(load_checkpoint(tmp_path / name / "checkpoints/latest.pt")) for name in ("srun", "torchrun"))
    assert len(a["ranks"]) == 2 and a["progress"]["step"] == 4
    assert compare_states(a, b) > 10


def test_the_train_tabs_slurm_runner_shows_a_pending_job_cancels_it_and_runs_it_on_resume(cluster, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    make_paired(tmp_path / "datasets" / "facades", n_train=6)
    service = TrainingService(tmp_path / "datasets", tmp_path / "runs", slurm=SlurmOptions(cpus_per_task=1))
    # Every CPU taken: the run waits for them.
    blocker = cluster.run("sbatch", "--parsable", f"--cpus-per-task={cluster.cpus}", "--output=/dev/null", "--wrap",
                          "sleep 120").stdout.strip()
    plan = service.plan("facades", "pix2pix", "quick", size=32, length=20, unit="steps",
                        settings={"model.ngf": "8", "model.ndf": "8", "data.num_workers": "0",
                                  "train.preempt_signal": "TERM"})
    name = service.start(plan)
    job = json.loads((tmp_path / "runs" / name / "run.json").read_text())["job"]
    view = wait_for("pending", lambda: (v := service.runs.view(name)).state == "pending" and "(Resources)" in
                    v.scheduler and v)
    assert view.scheduler == f"Slurm job {job}: pending (Resources)" and f"Slurm job {job}" in view.line()
    assert view.command.startswith("img2img submit --cpus-per-task 1 --model pix2pix ")
    assert service.runs.signature(name)[-1] == JobState("PENDING", "Resources")  # the page redraws on a new reason
    service.stop(name)
    assert service.runs.view(name).state == "cancelled"
    assert wait_for("the cancel", lambda: job_field(cluster, job, "JobState") == "CANCELLED")

    cluster.run("scancel", blocker)
    service.resume(name)
    assert wait_for("the end", lambda: service.runs.view(name).state == "finished", timeout_s=120)
    run = tmp_path / "runs" / name
    script = (run / "job.sbatch").read_text()
    assert "--cpus-per-task=1" in script and "--signal=TERM@300" in script  # the run's own preemption signal
    assert status(run)["step"] == 20 and (run / "checkpoints" / "latest.pt").is_file()
    assert "finished at step 20" in service.watch(name).log_tail  # the job's output is the run's log


def test_two_srun_tasks_translate_each_file_once_and_a_rerun_skips_them(cluster, tmp_path):
    checkpoint = make_checkpoint("pix2pix", tmp_path / "model.pt")
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        random_image(rng, 32, 32).save(folder / f"{i}.png")
    argv = ["srun", "--ntasks=2", PYTHON, "-m", "img2img", "translate", "--checkpoint", str(checkpoint),
            "--engine", "torch", "--num-workers", "0", str(folder), str(tmp_path / "out")]
    done = subprocess.run(argv, env=one_thread(cluster.env), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    converted = [int(n) for n in re.findall(r"\] converted (\d+)", done.stdout)]
    assert sorted(converted) == [4, 5]  # 9 files, each translated by one task
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{i}.png" for i in range(9))
    assert re.search(r"all 2 tasks: 9 images in [\d.]+ s, [\d.]+ images/s", done.stdout), done.stdout
    again = subprocess.run(argv, env=one_thread(cluster.env), capture_output=True, text=True, timeout=120)
    assert sorted(int(n) for n in re.findall(r"\] converted 0, skipped (\d+)", again.stdout)) == [4, 5], again.stdout
    assert "all 2 tasks: 0 images" in again.stdout
