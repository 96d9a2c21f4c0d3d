"""A service (or the gateway) as its own uvicorn process on loopback, as deployed: for benches that measure it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prodflow_core.couch.server import free_port

LOOPBACK = "127.0.0.1"


@dataclass
class Served:
    """A running service process: its URL and process (stopped by its own PID)."""

    url: str
    proc: subprocess.Popen[bytes]

    def peak_rss_bytes(self) -> int:
        """The process's resident set high-water mark so far (``VmHWM`` of ``/proc/PID/status``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/PID/status")


def _healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}; log: {log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"service not healthy after {timeout_s} s; log: {log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve(
    factory: str, env: dict[str, str], log: Path, *, health: str = "/healthz", timeout_s: float = 120.0
) -> Iterator[Served]:
    """``python -m uvicorn <factory> --factory`` on a free loopback port with ``env`` over this environment."""
    with serve_command(
        lambda port: [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", LOOPBACK, "--port",
                      str(port), "--no-access-log"],
        env, log, health=health, timeout_s=timeout_s,
    ) as served:  # fmt: skip
        yield served


@contextlib.contextmanager
def serve_command(
    command: Callable[[int], list[str]],
    env: dict[str, str],
    log: Path,
    *,
    health: str = "/healthz",
    timeout_s: float = 120.0,
) -> Iterator[Served]:
    """``command(port)`` serving HTTP on a free loopback port, with ``env`` over this environment; stopped after."""
    port = free_port(LOOPBACK)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(command(port), env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    try:
        _healthy(url + health, proc, timeout_s, log)
        yield Served(url, proc)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the process's own PID, SIGKILL after ``grace_s``; reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy (not idle, not waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def pids_named(*commands: str) -> list[int]:
    """Processes whose command name (``/proc/PID/comm``) is one of ``commands``: the CouchDB-API server's."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in commands:
                    found.append(int(entry.name))
    return found


def cpu_snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each named group of processes, and by the whole machine (``"machine"``)."""
    out = {name: sum(process_cpu_s(pid) for pid in group) for name, group in pids.items()}
    out["machine"] = machine_busy_s()
    return out


def system_cpu_groups(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, list[int]]:
    """The processes whose CPU a bench reports: each service of the embedded system, and the CouchDB-API server."""
    groups = {name: [proc.pid] for name, proc in procs.items()}
    groups["CouchDB-API server"] = pids_named("beam.smp", "node")
    return groups
