"""What img2img reads from Slurm's environment and writes for it, without a cluster: ranks, the
host list, the job script, `submit --dry-run`, and the preemption signal's handling."""
import json
import os
import signal

import pytest
from helpers import TINY_PIX2PIX

from img2img.cli import build_parser, given_settings, main
from img2img.device import Ranks
from img2img.flags import slurm_options_from
from img2img.persist.checkpoint import load_checkpoint
from img2img.slurm import SlurmOptions, SlurmTask, expand_hostlist, job_script
from img2img.training import Trainer, config_for_run
from img2img.training.preemption import requeue_if_preempted, was_preempted
from img2img.training.signals import StopRequest

# As srun sets them in its second task of a 4-task step on 2 nodes, and as sbatch sets them in the
# batch script's own shell (one process, though SLURM_NTASKS says 4).
STEP = {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "4",
        "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_STEP_NODELIST": "gpu[07-08]"}
BATCH_SHELL = {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "4",
               "SLURM_JOB_NODELIST": "gpu[07-08]"}


@pytest.mark.parametrize("text, hosts", [
    ("vm", ["vm"]),
    ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
    ("a[9-11]-ib,login", ["a9-ib", "a10-ib", "a11-ib", "login"]),
])
def test_a_compressed_host_list_expands_as_scontrol_show_hostnames_does(text, hosts):
    assert expand_hostlist(text) == hosts


def test_an_srun_task_knows_its_rank_local_rank_world_size_and_rank_0s_host():
    task = SlurmTask.from_env(STEP)
    assert (task.rank, task.local_rank, task.world_size, task.master_addr) == (3, 1, 4, "gpu07")
    assert task.master_port == SlurmTask.from_env({**STEP, "SLURM_PROCID": "0"}).master_port  # the job's, not the task's
    assert SlurmTask.from_env({**STEP, "MASTER_PORT": "29555"}).master_port == 29555


def test_a_batch_scripts_own_shell_is_one_process():
    assert SlurmTask.from_env(BATCH_SHELL) is None


def test_ranks_come_from_srun_unless_torchrun_set_its_own(monkeypatch):
    for name, value in STEP.items():
        monkeypatch.setenv(name, value)
    assert Ranks.from_env() == Ranks(3, 4, 1, ("gpu07", Ranks.from_env().rendezvous[1]))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert Ranks.from_env() == Ranks(0, 2, 0)


def test_the_job_script_asks_for_the_signal_a_requeue_and_one_task_per_gpu(tmp_path):
    options = SlurmOptions(partition="gpu", nodes=2, gpus=8, time="2-00:00:00", account="lab",
                           extra=("--qos=high",))
    script = job_script(["python", "-m", "img2img", "train", "--out", "/runs/a b"], options, "img2img-x", tmp_path,
                        "slurm.log")
    directives = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == ["--job-name=img2img-x", f"--output={tmp_path}/slurm.log", "--open-mode=append", "--requeue",
                          "--signal=USR1@300", "--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8",
                          "--partition=gpu", "--time=2-00:00:00", "--account=lab", "--qos=high"]
    assert script.rstrip().endswith("exec srun --kill-on-bad-exit=1 python -m img2img train --out '/runs/a b'")


def test_a_jobs_options_as_submit_flags_parse_back_to_the_same_options():
    options = SlurmOptions(partition="gpu", nodes=2, gpus=8, tasks=4, cpus_per_task=6, time="1:00:00", account="lab",
                           signal_seconds=600, extra=("--qos=high", "--exclusive"))
    args = build_parser().parse_args(["submit", *options.flags()])
    assert slurm_options_from(args) == options
    assert SlurmOptions().flags() == []


def test_submit_dry_run_writes_the_runs_config_and_script_without_submitting(paired_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["submit", "--dry-run", "--gpus", "2", "--time", "1:00:00", "--data", str(paired_dir), "--out",
                 str(run), "--preempt-signal", "TERM", *TINY_PIX2PIX]) == 0
    script = (run / "job.sbatch").read_text()
    assert "#SBATCH --signal=TERM@300" in script and "#SBATCH --ntasks-per-node=2" in script
    assert f"train --config {run / 'request.json'} --resume auto --out {run}" in script
    request = json.loads((run / "request.json").read_text())
    assert (request["train"]["out"], request["train"]["preempt_signal"], request["model"]["ngf"]) == (str(run), "TERM", 8)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("domain A (A): 3 channels uint8")  # what the trainer will read, said before it queues
    assert out[-1] == f"wrote {run / 'job.sbatch'}; submit it with: sbatch {run / 'job.sbatch'}"


def test_submit_refuses_a_bad_run_in_one_line_before_writing_anything(tmp_path, capsys):
    assert main(["submit", "--dry-run", "--out", str(tmp_path / "run"), *TINY_PIX2PIX]) == 2
    assert capsys.readouterr().err.strip() == "error: --data is required: the dataset folder to train on"
    assert not (tmp_path / "run").exists()


def test_submit_refuses_data_the_trainer_would_refuse_before_anything_is_queued(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["submit", "--dry-run", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"),
                 *TINY_PIX2PIX]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'empty'}: data folder holds no images (.jpg, .png, ...)"
    assert not (tmp_path / "run").exists()


def test_submit_refuses_to_resume_from_a_checkpoint_outside_the_run_folder(paired_dir, tmp_path, capsys):
    assert main(["submit", "--dry-run", "--resume", str(tmp_path / "elsewhere.pt"), "--data", str(paired_dir),
                 "--out", str(tmp_path / "run"), *TINY_PIX2PIX]) == 2
    assert "a job resumes from its own run folder's checkpoints" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_first_stop_signal_is_kept_to_tell_a_preemption_from_a_stop():
    with StopRequest((signal.SIGUSR1,)) as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.signal == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def stopped_by(sig: signal.Signals, paired_dir, out, *flags: str) -> Trainer:
    """A run of `flags` into OUT that gets `sig` during its third step."""
    args = build_parser().parse_args(["train", "--data", str(paired_dir), "--out", str(out), *TINY_PIX2PIX, *flags])
    cfg = config_for_run(given_settings(args, ("model", "method_config", "data", "train", "speed")),
                         data=args.data, out=args.out).cfg
    trainer = Trainer.from_config(cfg)
    step = trainer.method.training_step

    def third_step_signals(batch):
        if trainer.progress.step == 2:
            os.kill(os.getpid(), sig)
        return step(batch)

    trainer.method.training_step = third_step_signals
    trainer.fit()
    return trainer


def test_the_preemption_signal_inside_a_job_is_a_preemption_and_a_stop_file_makes_it_a_stop(paired_dir, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    trainer = stopped_by(signal.SIGUSR1, paired_dir, tmp_path / "run", "--max-steps", "50")
    assert trainer.stopped and trainer.progress.step == 3 and was_preempted(trainer)
    assert not was_preempted(stopped_by(signal.SIGTERM, paired_dir, tmp_path / "term", "--max-steps", "50"))
    trainer.folder.request_stop()  # the app's Stop: it signals the job too, and the run must not come back
    assert not was_preempted(trainer)


def test_sigterm_is_the_preemption_signal_when_the_run_says_so(paired_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert was_preempted(stopped_by(signal.SIGTERM, paired_dir, tmp_path / "run", "--max-steps", "50",
                                    "--preempt-signal", "TERM"))


def test_on_preempt_exit_leaves_the_requeue_to_slurm(paired_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol: a requeue would fail and say so
    trainer = stopped_by(signal.SIGUSR1, paired_dir, tmp_path / "run", "--max-steps", "50", "--on-preempt", "exit")
    assert requeue_if_preempted(trainer)
    assert trainer.folder.status().error == "preempted at step 3; left for Slurm to requeue"


def test_a_failed_requeue_keeps_the_checkpoint_and_says_so_in_the_runs_status(paired_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol
    trainer = stopped_by(signal.SIGUSR1, paired_dir, tmp_path / "run", "--max-steps", "50")
    assert requeue_if_preempted(trainer)
    status = trainer.folder.status()
    assert status.state == "stopped" and status.error.startswith("preempted at step 3; not requeued: requeue job 7: "
                                                                 "`scontrol` is not installed")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["progress"]["step"] == 3
