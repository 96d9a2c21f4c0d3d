"""A real single-node Slurm (Debian's slurm-wlm) in a scratch folder, for tests and the embedded runner.

Follows ``recipes/slurm-single-node.md``: munged (started if not running), slurmctld and slurmd on localhost,
no slurmdbd (so ``sacct`` is unavailable and states of finished jobs come from ``scontrol`` and the jobcomp
file). Clients need ``SLURM_CONF`` = :attr:`SlurmCluster.conf`, which :meth:`SlurmCluster.env` carries.
"""

from __future__ import annotations

import contextlib
import ctypes
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
        self.daemons: list[subprocess.Popen[bytes]] = []

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
        self.write_config()
        munged = _start_munged_unless_running(self.folder / "log" / "munged.out")
        if munged is not None:
            self.daemons.append(munged)
        for daemon in ("slurmctld", "slurmd"):
            self.daemons.append(_foreground([daemon, "-D", "-f", str(self.conf)], self.folder / "log" / f"{daemon}.out",
                                            self.env()))  # fmt: skip
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
        """Stop slurmd, slurmctld, then munged if this cluster started it (each its own child process)."""
        for proc in reversed(self.daemons):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.daemons.clear()


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child after fork only calls it
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the process that started the daemons dies without stopping them (a test run killed by a timeout),
    # the kernel sends them SIGTERM instead of leaving them behind.
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _foreground(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A daemon run in the foreground as our child, so it is stopped with us."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )


def _start_munged_unless_running(log: Path) -> subprocess.Popen[bytes] | None:
    """Start munged unless one answers; returns the one started here."""
    if subprocess.run(["munge", "-n"], capture_output=True, timeout=10).returncode == 0:
        return None  # a munged already answers (maybe another session's): leave it alone
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "-c"], check=True, timeout=30)
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    munged = _foreground(["munged", "--foreground", "--force"], log)
    deadline = time.monotonic() + 10
    while subprocess.run(["munge", "-n"], capture_output=True, timeout=10).returncode != 0:
        if munged.poll() is not None or time.monotonic() > deadline:
            raise SlurmUnavailable(f"munged did not start; see {log}")
        time.sleep(0.1)
    return munged


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
