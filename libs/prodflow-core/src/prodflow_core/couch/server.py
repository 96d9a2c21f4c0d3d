"""Start a CouchDB-API server for the embedded runner and the tests.

Order of preference, decided in :func:`couch_server`:
1. ``PRODFLOW_COUCHDB_URL`` names an existing CouchDB: use it.
2. A Docker engine answers: CouchDB 3 through testcontainers.
3. Otherwise PouchDB Server from the npm registry, installed into the project-local tools folder.

:class:`~prodflow_core.couch.couchdb3.LocalCouchDB3Server` starts a real Apache CouchDB 3.5 from the release
beside the checkout; the test fixtures use it on request.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from prodflow_core.credentials import redact_url, split_userinfo

POUCHDB_SERVER_VERSION = "4.2.0"
COUCHDB_IMAGE = "couchdb:3"


class CouchServerError(RuntimeError):
    """The CouchDB-API server could not be installed or started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tools_dir() -> Path:
    """Where project-local tools go: ``PRODFLOW_TOOLS_DIR``, else ``.local`` in the checkout (or cwd)."""
    if env := os.environ.get("PRODFLOW_TOOLS_DIR"):
        return Path(env)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").exists() or (folder / ".git").exists():
            return folder / ".local"
    return here / ".local"


def ensure_pouchdb_server(tools: Path | None = None) -> Path:
    """The PouchDB Server entry script, installed with npm into ``tools/pouchdb`` when absent."""
    prefix = (tools or tools_dir()) / "pouchdb"
    script = prefix / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        raise CouchServerError("npm is not installed: install Node.js, or set PRODFLOW_COUCHDB_URL")
    prefix.mkdir(parents=True, exist_ok=True)
    # Install scripts are skipped: the only one that builds anything is sqlite3's, for the optional websql adapter
    # we never use, and it compiled SQLite from source (about 150 s of a fresh CI run). leveldown's script then
    # runs alone: it picks the prebuilt binary for this platform, or compiles where there is none.
    for args in (
        ["install", "--no-audit", "--no-fund", "--ignore-scripts", f"pouchdb-server@{POUCHDB_SERVER_VERSION}"],
        ["rebuild", "leveldown"],
    ):
        proc = subprocess.run([npm, *args, "--prefix", str(prefix)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CouchServerError(f"npm {args[0]} for pouchdb-server failed:\n{proc.stderr[-2000:]}")
    if not script.exists():
        raise CouchServerError(f"npm install left no pouchdb-server at {script}")
    return script


def wait_until_up(url: str, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``GET url`` until it answers 200."""
    bare, user, password = split_userinfo(url)  # credentials as a header: httpx logs the URL it requests
    auth = (user, password or "") if user else None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise CouchServerError(f"CouchDB-API server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(bare, auth=auth, timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise CouchServerError(f"no CouchDB-API server answered at {redact_url(url)} within {timeout_s} s")


def terminate(proc: subprocess.Popen[bytes], grace_s: float, send: Callable[[int, int], None] = os.kill) -> None:
    """End ``proc`` if it still runs: SIGTERM, then SIGKILL after ``grace_s``; ``send`` is :func:`os.kill` (the
    process) or :func:`os.killpg` (its process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        send(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            send(proc.pid, signal.SIGKILL)
        proc.wait()


class LocalCouchServer:
    """A PouchDB Server process on loopback; on-disk (leveldb) under ``data_dir`` or in memory."""

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        in_memory: bool = False,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.in_memory = in_memory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="prodflow-couch-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "pouchdb-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise CouchServerError("node is not installed: install Node.js, or set PRODFLOW_COUCHDB_URL")
        args = [
            node,
            str(ensure_pouchdb_server()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--config",
            str(self.data_dir / "config.json"),
            "--no-stdout-logs",
        ]
        return [*args, "--in-memory"] if self.in_memory else args

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the server and wait until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_up(self.url, timeout_s, self.proc)
        return self.url

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL after ``grace_s``)."""
        if self.proc is not None:
            terminate(self.proc, grace_s, os.killpg)
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalCouchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def docker_engine_available() -> bool:
    """True when a Docker engine answers (not merely a docker client being installed)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def _couchdb_container() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (
        DockerContainer(COUCHDB_IMAGE)
        .with_env("COUCHDB_USER", "admin")
        .with_env("COUCHDB_PASSWORD", "prodflow")
        .with_exposed_ports(5984)
    )
    with container:
        wait_for_logs(container, "Apache CouchDB has started", timeout=120)
        url = f"http://admin:prodflow@{container.get_container_host_ip()}:{container.get_exposed_port(5984)}"
        wait_until_up(url)
        yield url


def wants_local_server() -> bool:
    """True when :func:`couch_server` would start PouchDB Server (no ``PRODFLOW_COUCHDB_URL``, no Docker)."""
    if os.environ.get("PRODFLOW_COUCHDB_URL"):
        return False
    return os.environ.get("PRODFLOW_USE_DOCKER", "1") == "0" or not docker_engine_available()


@contextlib.contextmanager
def couch_server(*, data_dir: Path | None = None, in_memory: bool = True) -> Iterator[str]:
    """A CouchDB-API server's URL for the duration of the block (see the module docstring for the order)."""
    if url := os.environ.get("PRODFLOW_COUCHDB_URL"):
        wait_until_up(url)
        yield url
        return
    if os.environ.get("PRODFLOW_USE_DOCKER", "1") != "0" and docker_engine_available():
        with _couchdb_container() as url:
            yield url
        return
    with LocalCouchServer(data_dir=data_dir, in_memory=in_memory) as server:
        yield server.url


def main() -> None:
    """``prodflow-couch``: run a PouchDB Server in the foreground until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description="Run a CouchDB-API server (PouchDB Server) on loopback.")
    parser.add_argument("--port", type=int, default=5984)
    parser.add_argument("--dir", type=Path, default=Path(".data/couch"))
    parser.add_argument("--in-memory", action="store_true")
    args = parser.parse_args()
    server = LocalCouchServer(data_dir=args.dir, port=args.port, in_memory=args.in_memory)
    print(server.start(), flush=True)
    try:
        assert server.proc is not None
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
