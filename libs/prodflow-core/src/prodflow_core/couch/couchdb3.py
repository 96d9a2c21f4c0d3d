"""A real Apache CouchDB 3.5 on loopback, from the release beside the checkout (``../shared/couchdb``, or
``PRODFLOW_COUCHDB3_DIST``), and Erlang's port mapper (epmd) that its nodes register with."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from prodflow_core.couch.server import CouchServerError, free_port, terminate, wait_until_up
from prodflow_core.credentials import redact_url

COUCHDB3_DIST_ENV = "PRODFLOW_COUCHDB3_DIST"
EPMD_PORT = 4369
NO_BUSY_WAIT_FLAGS = "+sbwt none +sbwtdcpu none +sbwtdio none"
"""Erlang flags (in ``ERL_FLAGS``) that stop CouchDB's schedulers from spinning when they run out of work.

By default a scheduler busy-waits a while before it sleeps: CPU that, on cores CouchDB shares with the services,
they could have used. ``bench/load.py`` (300 req/s during a 100,000-job campaign on 2 cores), back to back:
see README "Scale". Added after any ``ERL_FLAGS`` of the caller's own.
"""


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
        """Start the server (``start.sh DATA_DIR PORT``) and wait for ``/_up`` (one node: and ``_users``); returns
        :attr:`url`."""
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
                env={**os.environ, "ERL_FLAGS": f"{os.environ.get('ERL_FLAGS', '')} {NO_BUSY_WAIT_FLAGS}".lstrip()},
            )
        LocalCouchDB3Server._running.add(id(self))
        try:
            wait_until_up(f"{self.url}/_up", timeout_s, self.proc)
            if self.cluster_config is None:
                # A single node creates _users after /_up answers: an account made right after start met
                # "Database does not exist" (a test, 5 runs of 6 in one spell).
                wait_until_up(f"{self.url}/_users", timeout_s, self.proc)
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
        if self.proc is not None:
            terminate(self.proc, grace_s)
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
