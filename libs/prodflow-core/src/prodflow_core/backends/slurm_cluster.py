"""A real single-node Slurm (Debian's slurm-wlm) in a scratch folder, for tests and the embedded runner.

Follows ``recipes/slurm-single-node.md``: munged (started if not running), slurmctld and slurmd on localhost,
no slurmdbd (so ``sacct`` is unavailable and states of finished jobs come from ``scontrol`` and the jobcomp
file). Clients need ``SLURM_CONF`` = :attr:`SlurmCluster.conf`, which :meth:`SlurmCluster.env` carries.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SLURM_CONF_TEMPLATE = """\
ClusterName=prodflow
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/log/jobcomp.log
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=3600
DefMemPerCPU=100
MaxArraySize=100001
MaxJobCount=200000
SchedulerParameters=bf_interval=1,sched_min_interval=100000
NodeName=localhost CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmUnavailable(RuntimeError):
    """Slurm cannot start here (packages missing, not root, daemons refuse)."""


class SlurmCluster:
    """The folder, config and daemons of one single-node Slurm."""

    def __init__(self, folder: Path, ctld_port: int, d_port: int) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.jobcomp_log = folder / "log" / "jobcomp.log"
        self.ctld_port = ctld_port
        self.d_port = d_port
        self.munged_pid: int | None = None

    def env(self) -> dict[str, str]:
        """The environment for Slurm clients (``sbatch``, ``squeue``, ...)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        memory_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text(
            SLURM_CONF_TEMPLATE.format(
                dir=self.folder,
                ctld_port=self.ctld_port,
                d_port=self.d_port,
                cpus=os.cpu_count() or 1,
                memory=max(512, memory_mib - 1024),
            )
        )

    def start(self, timeout_s: float = 30.0) -> None:
        """Start slurmctld and slurmd and wait until the node is idle."""
        self.munged_pid = _ensure_munged()
        self.write_config()
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(self.conf)], env=self.env(), check=True, timeout=30)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=self.env(), capture_output=True, text=True, timeout=10
            )
            if out.returncode == 0 and out.stdout.strip() in {"idle", "mix", "alloc"}:
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"the Slurm node did not become idle; see {self.folder / 'log'}")

    def stop(self) -> None:
        """Stop both daemons by the pids in their pid files, then munged if this cluster started it."""
        for daemon in ("slurmd", "slurmctld"):
            pid_file = self.folder / f"{daemon}.pid"
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid, 10.0)
        if self.munged_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.munged_pid, signal.SIGTERM)
                _wait_gone(self.munged_pid, 10.0)


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ensure_munged() -> int | None:
    """Start munged unless one answers; returns the pid of the one started here."""
    if subprocess.run(["munge", "-n"], capture_output=True, timeout=10).returncode == 0:
        return None  # a munged already answers (maybe another session's): leave it alone
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "-c"], check=True, timeout=30)
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["munged", "--force"], check=True, timeout=30)
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(Path("/run/munge/munged.pid").read_text().strip())
    return None


def missing_requirement() -> str | None:
    """Why Slurm cannot start here, or ``None`` if it can be tried."""
    for tool in ("slurmctld", "slurmd", "sbatch", "munged"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the single-node Slurm runs its daemons as root"
    return None


@contextlib.contextmanager
def slurm_cluster(folder: Path, ctld_port: int, d_port: int) -> Iterator[SlurmCluster]:
    """A running single-node Slurm in ``folder``, stopped on exit."""
    reason = missing_requirement()
    if reason:
        raise SlurmUnavailable(reason)
    cluster = SlurmCluster(folder, ctld_port, d_port)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
