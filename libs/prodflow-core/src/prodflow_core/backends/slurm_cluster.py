"""A real single-node Slurm (Debian's slurm-wlm) in a scratch folder, for tests and the embedded runner.

Follows ``recipes/slurm-single-node.md``: munged, slurmctld and slurmd on localhost,
no slurmdbd (so ``sacct`` is unavailable and states of finished jobs come from ``scontrol`` and the jobcomp
file). The cluster's munged is its own, on a socket in its folder (``AuthInfo``): a munged shared with another
session's cluster would take this one's authentication down when that session ends. Clients need
``SLURM_CONF`` = :attr:`SlurmCluster.conf`, which :meth:`SlurmCluster.env` carries.

Clients that lose ``SLURM_CONF`` on the way (snakemake-executor-plugin-slurm-jobstep removes every ``SLURM_*``
variable but the job's identity before its inner ``srun``) read the compiled-in path instead, ``/etc/slurm/slurm.conf``
on Debian. So, where that path is free, the cluster links its config there while it runs
(:attr:`SlurmCluster.serves_default_conf`) and removes only that link when it stops.
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
AuthInfo=socket={dir}/munge/munge.socket.2
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
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
"""Where Debian's Slurm clients look for the config when ``SLURM_CONF`` is unset (``scontrol show config``)."""


class SlurmUnavailable(RuntimeError):
    """Slurm cannot start here (packages missing, not root, daemons refuse)."""


class SlurmCluster:
    """The folder, config and daemons of one single-node Slurm."""

    def __init__(self, folder: Path, ctld_port: int, d_port: int, default_conf: Path = DEFAULT_CONF) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.jobcomp_log = folder / "log" / "jobcomp.log"
        self.ctld_port = ctld_port
        self.d_port = d_port
        self.default_conf = default_conf
        self.serves_default_conf = False
        """True while :attr:`default_conf` links to this cluster's config (clients without ``SLURM_CONF`` reach
        it); False where another config is there."""
        self.daemons: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        """The environment for Slurm clients (``sbatch``, ``squeue``, ...)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        for sub in ("state", "spool", "log", "munge"):
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
        self.serves_default_conf = claim_default_conf(self.default_conf, self.conf)
        self.daemons.append(_start_munged(self.folder / "munge", self.folder / "log"))
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
        """Stop slurmd, slurmctld, then munged (each its own child process)."""
        for proc in reversed(self.daemons):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.daemons.clear()
        if self.serves_default_conf:
            release_default_conf(self.default_conf, self.conf)
            self.serves_default_conf = False


def claim_default_conf(default_conf: Path, conf: Path) -> bool:
    """Link ``default_conf`` to ``conf`` unless another config is there; True if it now links to ``conf``.

    A link left by a cluster that is gone (its config removed, or its slurmctld no longer running: a test run
    killed before its teardown) is replaced; a regular file, or a link to a live cluster, is left alone.
    """
    if default_conf.is_symlink() and not _live_cluster_conf(default_conf.resolve()):
        default_conf.unlink(missing_ok=True)
    try:
        default_conf.parent.mkdir(parents=True, exist_ok=True)
        default_conf.symlink_to(conf)
    except FileExistsError:
        return default_conf.is_symlink() and default_conf.resolve() == conf.resolve()
    except OSError:  # not root, or a read-only /etc
        return False
    return True


def release_default_conf(default_conf: Path, conf: Path) -> None:
    """Remove ``default_conf`` if it is still the link to ``conf`` (and nothing else)."""
    if default_conf.is_symlink() and os.readlink(default_conf) == str(conf):
        default_conf.unlink(missing_ok=True)


def _live_cluster_conf(conf: Path) -> bool:
    """True if ``conf`` exists and the slurmctld of its ``SlurmctldPidFile`` is running."""
    try:
        text = conf.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "slurmctldpidfile":
            try:
                pid = int(Path(value.strip()).read_text().split()[0])
                return b"slurmctld" in Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                return False
    return True  # a config without a pid file is not one of ours: treat it as live


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


def _start_munged(run_dir: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    """Start a munged of the cluster's own, listening on ``run_dir/munge.socket.2``."""
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "-c"], check=True, timeout=30)
    socket = run_dir / "munge.socket.2"
    argv = ["munged", "--foreground", "--force", f"--socket={socket}", f"--pid-file={run_dir / 'munged.pid'}",
            f"--seed-file={run_dir / 'munged.seed'}", f"--log-file={log_dir / 'munged.log'}"]  # fmt: skip
    munged = _foreground(argv, log_dir / "munged.out")
    deadline = time.monotonic() + 10
    while subprocess.run(["munge", "-n", f"--socket={socket}"], capture_output=True, timeout=10).returncode != 0:
        if munged.poll() is not None or time.monotonic() > deadline:
            munged.kill()
            munged.wait()
            raise SlurmUnavailable(f"munged did not start; see {log_dir / 'munged.out'}")
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
