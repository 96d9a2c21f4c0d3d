"""Start a CouchDB-API server for the embedded runner and the tests.

Order of preference, decided in :func:`couch_server`:
1. ``PRODFLOW_COUCHDB_URL`` names an existing CouchDB: use it.
2. A Docker engine answers: CouchDB 3 through testcontainers.
3. Otherwise PouchDB Server from the npm registry, installed into the project-local tools folder.

:class:`LocalCouchDB3Server` starts a real Apache CouchDB 3.5 from the release beside the checkout
(``../shared/couchdb``, or ``PRODFLOW_COUCHDB3_DIST``); the test fixtures use it on request.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

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
        """Stop the server (SIGTERM, then SIGKILL after ``grace_s``)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalCouchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


COUCHDB3_DIST_ENV = "PRODFLOW_COUCHDB3_DIST"
EPMD_PORT = 4369


def repo_root() -> Path | None:
    """The checkout this package runs from (the folder holding ``uv.lock``), else the one around the cwd."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "uv.lock").exists():
                return folder
    return None


def couchdb3_dist_dir() -> Path | None:
    """Where the CouchDB 3.5 release is expected: ``PRODFLOW_COUCHDB3_DIST``, else ``<repo root>/../shared/couchdb``."""
    if env := os.environ.get(COUCHDB3_DIST_ENV):
        return Path(env)
    root = repo_root()
    return root.parent / "shared" / "couchdb" if root else None


def couchdb3_dist() -> Path | None:
    """The CouchDB 3.5 release folder (with its ``start.sh``), or ``None`` when it is absent."""
    folder = couchdb3_dist_dir()
    return folder if folder is not None and (folder / "start.sh").is_file() else None


def couchdb3_missing_reason() -> str:
    """Why no CouchDB 3.5 can be started here (for skips and errors)."""
    return (
        f"no CouchDB 3.5 release at {couchdb3_dist_dir()} (start.sh missing): "
        f"put it at <repo root>/../shared/couchdb or set {COUCHDB3_DIST_ENV}"
    )


def _epmd_request(code: int, timeout_s: float = 2.0) -> bytes | None:
    """One request to the local Erlang port mapper (``NAMES_REQ`` 110, ``KILL_REQ`` 107); ``None`` if none runs."""
    try:
        with socket.create_connection(("127.0.0.1", EPMD_PORT), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">HB", 1, code))
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            return answer
    except OSError:
        return None


def epmd_running() -> bool:
    """True when an Erlang port mapper answers on 127.0.0.1:4369."""
    return _epmd_request(110) is not None


def _erlang_vm_running() -> bool:
    """True when any Erlang VM (``beam.smp``, e.g. a CouchDB starting up) runs on this host, as far as we can see."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True  # cannot tell: assume one does
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                # /proc/PID/stat: "pid (comm) state ..."; a zombie (Z) has exited already
                comm, _, rest = (entry / "stat").read_text().rpartition(")")
                if comm.partition("(")[2].startswith("beam") and rest.split()[0] != "Z":
                    return True
    return False


class LocalCouchDB3Server:
    """A real Apache CouchDB 3.5 on loopback, from the release in :func:`couchdb3_dist`, in its own data folder.

    The admin password is generated; :attr:`url` carries it as userinfo (``http://admin:<password>@127.0.0.1:port``),
    which is how services authenticate. The server is stopped by its PID (SIGTERM, then SIGKILL). Erlang's port
    mapper (``epmd``), which the first CouchDB starts and which outlives it, is stopped after the last server of
    this process only if none ran before ours, no Erlang VM runs any more, and epmd agrees (it refuses while any
    node is registered).
    """

    ADMIN = "admin"
    _running: ClassVar[set[int]] = set()
    _epmd_was_ours: ClassVar[bool | None] = None

    def __init__(
        self,
        *,
        dist: Path | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        password: str | None = None,
        log_path: Path | None = None,
        cluster_config: str | None = None,
    ) -> None:
        found = dist or couchdb3_dist()
        if found is None:
            raise CouchServerError(couchdb3_missing_reason())
        self.dist = found
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.password = password or secrets.token_urlsafe(18)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="prodflow-couchdb3-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "couchdb.log"
        self.cluster_config = cluster_config
        """``None``: a single node. Else ini text for a node of a cluster (:mod:`prodflow_core.couch.cluster`)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL with the admin credentials (what ``PRODFLOW_COUCHDB_URL`` takes)."""
        return f"http://{self.ADMIN}:{self.password}@{self.host}:{self.port}"

    @property
    def node_name(self) -> str:
        """The Erlang node name ``start.sh`` gives this server (one per port)."""
        return f"couchdb-{self.port}@{self.host}"

    def __repr__(self) -> str:
        return f"LocalCouchDB3Server({redact_url(self.url)}, data_dir={self.data_dir})"

    def _write_config(self) -> None:
        # start.sh writes the same local.ini when absent; written here so the password is not in the process table.
        single = "true" if self.cluster_config is None else "false"
        (self.data_dir / "local.ini").write_text(
            f"[couchdb]\nsingle_node = {single}\n"
            f"database_dir = {self.data_dir}\nview_index_dir = {self.data_dir}\n\n"
            f"[chttpd]\nport = {self.port}\nbind_address = {self.host}\n\n"
            f"[admins]\n{self.ADMIN} = {self.password}\n\n{self.cluster_config or ''}"
        )

    def start(self, timeout_s: float = 120.0) -> str:
        """Start the server (``start.sh DATA_DIR PORT``) and wait for ``/_up``; returns :attr:`url`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if LocalCouchDB3Server._epmd_was_ours is None:
            LocalCouchDB3Server._epmd_was_ours = not epmd_running()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["/bin/sh", str(self.dist / "start.sh"), str(self.data_dir), str(self.port)],
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        LocalCouchDB3Server._running.add(id(self))
        try:
            wait_until_up(f"{self.url}/_up", timeout_s, self.proc)
        except CouchServerError:
            self.stop()
            raise
        return self.url

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; its data stays and :meth:`start` brings it back."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop the server (SIGTERM to its PID, SIGKILL after ``grace_s``), drop a temporary data folder, maybe epmd."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        LocalCouchDB3Server._running.discard(id(self))
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if not LocalCouchDB3Server._running:
            self._stop_epmd_if_ours()

    @staticmethod
    def _stop_epmd_if_ours(wait_s: float = 3.0) -> bool:
        """Stop epmd when our servers started it and nothing uses it any more; True if it was stopped."""
        if not LocalCouchDB3Server._epmd_was_ours or _erlang_vm_running():
            return False  # epmd was there before us, or some Erlang VM (not ours: they have exited) may use it
        deadline = time.monotonic() + wait_s
        while True:
            # KILL_REQ: epmd refuses ("NO") while any node is registered; ours unregisters as its VM exits.
            answer = _epmd_request(107)
            if answer is None or answer == b"OK":
                LocalCouchDB3Server._epmd_was_ours = None
                return answer == b"OK"
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def __enter__(self) -> LocalCouchDB3Server:
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
