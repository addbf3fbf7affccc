"""A real one-node Slurm for the tests: Debian's munged, slurmctld and slurmd, started in the
foreground in a folder of their own with a generated configuration (this machine's CPUs, one
partition), and stopped with the test session. Clients reach it through SLURM_CONF."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .servers import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")


def why_no_slurm() -> str | None:
    """None when Slurm can run here, else why not (the tests that need it skip with this)."""
    missing = [d for d in (*DAEMONS, "sbatch", "srun", "squeue", "scancel", "scontrol") if shutil.which(d) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing; .ci/run installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs, and these tests do not run as root"
    return None


class LocalSlurm:
    """munged + slurmctld + slurmd on this machine, all state under `root`, on 127.0.0.1 (so that
no name needs to resolve)."""

    def __init__(self, root: Path, cpus: int | None = None) -> None:
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        """The environment a Slurm client (sbatch, srun, squeue) needs to find this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        r = self.root
        self.conf.write_text(f"""\
ClusterName=img2img-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire=5
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
SchedulerParameters=sched_interval=1
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self, timeout_s: float = 30.0) -> "LocalSlurm":
        self.write_config()
        log = open(self.root / "log" / "daemons.out", "ab")
        m = self.root / "munge"
        self.processes.append(subprocess.Popen(
            ["munged", "-F", "-f", f"--socket={self.munge_socket}", f"--key-file={m / 'munge.key'}",
             f"--pid-file={m / 'munged.pid'}", f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"],
            stdout=log, stderr=subprocess.STDOUT))
        self._wait(lambda: self.munge_socket.exists(), timeout_s, "munged")
        self.processes.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(self.conf)], stdout=log,
                                               stderr=subprocess.STDOUT, env=self.env))
        self._wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout_s, "slurmctld")
        self.processes.append(subprocess.Popen(["slurmd", "-D", "-f", str(self.conf), "-N", self.node], stdout=log,
                                               stderr=subprocess.STDOUT, env=self.env))
        self._wait(lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False).stdout, timeout_s, "slurmd")
        return self

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for p in reversed(self.processes):
            p.terminate()
        for p in reversed(self.processes):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            if ready():
                return
            time.sleep(0.2)
        logs = "\n".join(f.read_text()[-2000:] for f in (self.root / "log").glob("*") if f.is_file())
        raise RuntimeError(f"{what} did not start:\n{logs}")

    def job_state(self, job_id: str) -> str:
        return self.run("scontrol", "show", "job", job_id).stdout
