"""A run as a Slurm job: its folder holds the config it starts from (`request.json`) and the sbatch
script (`job.sbatch`) that runs `img2img train` on it as one srun step, resuming from the newest
checkpoint each time Slurm starts it again. `img2img submit` and the app's Slurm runner write
both the same way; the script is plain, to be read and resubmitted by hand."""
from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

from .. import slurm
from ..config import RunConfig
from ..files import atomic_write_text
from .run_folder import REQUEST_FILE

JOB_SCRIPT = "job.sbatch"
JOB_LOG = "slurm.log"


def train_command(folder: Path, python: str = sys.executable) -> list[str]:
    """What each task runs: this Python's img2img, from the run's request, resuming if it can."""
    return [python, "-m", "img2img", "train", "--config", str(folder / REQUEST_FILE), "--resume", "auto",
            "--out", str(folder)]


def write_job(cfg: RunConfig, options: slurm.SlurmOptions, python: str = sys.executable, log: str = JOB_LOG) -> Path:
    """Write RUN/request.json and RUN/job.sbatch for a run of `cfg` (RUN is its `train.out`,
    made absolute: the job may start in another directory), the job's output going to RUN/LOG;
    returns the script."""
    folder = Path(cfg.train.out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out=str(folder)))
    atomic_write_text(folder / REQUEST_FILE, json.dumps(cfg.to_dict(), indent=1))
    name = "img2img-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.name)
    script = folder / JOB_SCRIPT
    atomic_write_text(script, slurm.job_script(train_command(folder, python), options, name, folder, log))
    return script
