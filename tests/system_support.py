"""The whole system started by the embedded runner (``prodflow up``) as a subprocess on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from prodflow_cli.runner import free_port_block
from prodflow_core.couch.server import free_port

T = TypeVar("T")


@dataclass
class System:
    """A running ``prodflow up``: where it is, its admin token, the pids it reported, what it printed."""

    proc: subprocess.Popen[str]
    gateway: str
    token: str
    pids: list[int]
    couch_url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)

    def stop(self) -> str:
        """Ctrl-C, wait, and return the rest of its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=60)
        return rest


def _value(lines: list[str], key: str) -> str:
    return next(line.split()[-1] for line in lines if line.strip().startswith(key))


@contextlib.contextmanager
def embedded_system(
    data_dir: Path, extra_env: dict[str, str] | None = None, up_args: Sequence[str] = ()
) -> Iterator[System]:
    """Run ``prodflow up`` (with ``up_args``) until the block ends (then Ctrl-C it, if the block did not)."""
    port = free_port_block()
    env = {k: v for k, v in os.environ.items() if k != "PRODFLOW_COUCHDB_URL"}
    env.update(extra_env or {})
    command = [
        str(Path(sys.executable).parent / "prodflow"),
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--couch-port",
        str(free_port()),
        *up_args,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"prodflow up ended early:\n{''.join(lines)}")
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        system = System(
            proc=proc,
            gateway=f"http://127.0.0.1:{port}",
            token=(data_dir / "gateway-admin-token").read_text().strip(),  # the banner says where, not what
            pids=[int(p) for p in _value_line(lines, "pids")],
            couch_url=_value(lines, "couchdb"),
            data_dir=data_dir,
            lines=lines,
        )
        yield system
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)


def _value_line(lines: list[str], key: str) -> list[str]:
    return next(line for line in lines if line.strip().startswith(key)).split()[1:]


def alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def gateway_client(system: System, token: str) -> httpx.Client:
    """A client of the system's gateway with ``token``."""
    return httpx.Client(base_url=system.gateway, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def snoplus_token(admin: httpx.Client, user: str, role: str) -> str:
    """The secret of a new token of ``user`` with ``role`` for snoplus."""
    made = admin.post("/api/auth/tokens", json={"user": user, "experiments": ["snoplus"], "roles": [role]})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def put_toy_module(admin: httpx.Client, module: str, command: str, description: str) -> None:
    """Put a run-by-run-events snoplus module running ``command`` (100 events a job) in the catalog."""
    spec = {
        "description": description,
        "event_modes": ["run_by_run_events"],
        "kinds": ["production"],
        "command": command,
        "default_ev_per_run": 100,
    }
    put = admin.put(f"/api/catalog/snoplus/modules/{module}", json=spec)
    assert put.status_code in (200, 201), put.text
