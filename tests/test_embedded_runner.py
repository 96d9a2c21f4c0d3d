"""``prodflow up``: all six processes come up, the gateway reaches every service, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prodflow_core.couch.server import free_port

pytestmark = pytest.mark.integration
SERVICES = ("request-api", "submitter", "monitor", "cycle-runner")


def _free_block(size: int) -> int:
    """A port with the ``size - 1`` ports after it free too."""
    for _ in range(50):
        base = free_port()
        if base + size < 65535 and all(_is_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_up_serves_every_service_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    port = _free_block(5)
    env = {k: v for k, v in os.environ.items() if k != "PRODFLOW_COUCHDB_URL"}
    command = [
        str(Path(sys.executable).parent / "prodflow"),
        "up",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(port),
        "--couch-port",
        str(free_port()),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"runner ended early: {''.join(lines)}"
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        token = next(line.split()[-1] for line in lines if line.strip().startswith("admin token"))
        pids = [int(p) for p in next(line for line in lines if line.strip().startswith("pids")).split()[1:]]
        assert len(pids) == 5, text
        gateway = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
            for service in SERVICES:
                health = client.get(f"/api/health/{service}")
                assert health.status_code == 200 and health.json()["service"] == service
            assert client.get("/healthz").json()["status"] == "ok"
            assert client.get("/api/auth/whoami").json()["roles"] == ["admin"]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "prodflow stopped." in rest
    assert not [pid for pid in pids if _alive(pid)]
    couch_url = next(line.split()[-1] for line in lines if line.strip().startswith("couchdb"))
    for url in (f"http://127.0.0.1:{port}/healthz", couch_url):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
