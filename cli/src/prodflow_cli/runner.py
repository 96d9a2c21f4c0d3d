"""The embedded runner: a CouchDB-API server, every service and the gateway as local processes.

Everything lives under one data folder (SQLite files, the CouchDB data, logs, the admin token). Ctrl-C (SIGINT)
or SIGTERM stops every process group it started, then the CouchDB-API server; nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.couchdb3 import LocalCouchDB3Server
from prodflow_core.couch.members import service_accounts, set_up_service_accounts
from prodflow_core.couch.server import LocalCouchServer, free_port, wait_until_up
from prodflow_core.credentials import redact_url, split_userinfo
from prodflow_core.jobdocs import JOB_DATABASES
from prodflow_core.settings import DEFAULT_JOB_SHARDS

from prodflow_cli.config import GATEWAY_URL_FILE


@dataclass(frozen=True)
class ServiceSpec:
    """How to start one service: its name, app factory, port offset from the gateway's port and CPU niceness."""

    name: str
    factory: str
    offset: int
    niceness: int = 0
    """Added to the runner's own (``nice``), for the process and all it starts: see :data:`BATCH_NICENESS`."""


BATCH_NICENESS = 10
"""The niceness of the services whose work is batch bookkeeping: submitting jobs (and the ``local`` backend's jobs,
which the submitter starts), delivering notifications, running cycles. On one host every process shares the
cores; a busy campaign's bookkeeping then yields them to the gateway, the monitor and CouchDB, which answer the
people and tools watching it. Measured with ``bench/load.py`` (300 req/s during a 100,000-job campaign, 2 cores):
request p50 13 -> 8 ms; the campaign advanced as fast (its work waits only while a reader's is runnable)."""

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("request-api", "prodflow_request_api.app:create_app", 1),
    ServiceSpec("submitter", "prodflow_submitter.app:create_app", 2, BATCH_NICENESS),
    ServiceSpec("monitor", "prodflow_monitor.app:create_app", 3),
    ServiceSpec("cycle-runner", "prodflow_cycle_runner.app:create_app", 4, BATCH_NICENESS),
    ServiceSpec("notifier", "prodflow_notifier.app:create_app", 5, BATCH_NICENESS),
    ServiceSpec("gateway", "prodflow_gateway.app:create_app", 0),
)


class RunnerError(RuntimeError):
    """A process failed to start or died."""


def free_port_block(size: int = len(SERVICES), host: str = "127.0.0.1") -> int:
    """A port that is free with the ``size - 1`` ports after it: a gateway port for ``prodflow up``.

    Chosen below the kernel's range of ephemeral ports where it can: a port in that range that is free now can be
    taken by any outgoing connection (a service's own, to CouchDB) before the service meant to listen on it
    binds it ("address already in use", seen in CI).
    """
    first_ephemeral = _ephemeral_ports()[0]
    low, high = max(1024, first_ephemeral - 12_000), first_ephemeral - size
    for _ in range(200 if high > low else 0):
        base = secrets.randbelow(high - low) + low
        if all(_is_free(host, base + i) for i in range(size)):
            return base
    for _ in range(50):
        base = free_port(host)
        if base + size < 65535 and all(_is_free(host, base + i) for i in range(size)):
            return base
    raise RunnerError(f"no block of {size} free ports on {host}")


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux; the IANA range elsewhere)."""
    try:
        first, last = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(first), int(last)
    except (OSError, ValueError):
        return 49152, 65535


def _is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def identity_secret(data_dir: Path) -> str:
    """``PRODFLOW_IDENTITY_SECRET``, or a random secret kept in the data folder (0600) across restarts."""
    if env := os.environ.get("PRODFLOW_IDENTITY_SECRET"):
        return env
    path = data_dir / "identity-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


@dataclass
class EmbeddedSystem:
    """The whole system on one machine."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    couch_port: int = 5984
    couch: LocalCouchServer | LocalCouchDB3Server | None = None
    couch_release: Path | None = None
    """An Apache CouchDB 3 release (``../shared/couchdb``) to start instead of PouchDB Server (fault tests)."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    """Variables for every process on top of this process's environment (settings of the services)."""
    env: dict[str, str] = field(default_factory=dict)
    member_accounts: bool = False
    """Run each service with its own CouchDB account (CouchDB 3; ``PRODFLOW_COUCHDB_URL`` an admin's)."""
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Variables of one service on top of :attr:`env` (its CouchDB account)."""

    def url_of(self, service: ServiceSpec) -> str:
        return f"http://{self.host}:{self.port + service.offset}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self, couch_url: str) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        env.update(
            PRODFLOW_COUCHDB_URL=couch_url,
            PRODFLOW_IDENTITY_SECRET=identity_secret(self.data_dir),
            PRODFLOW_DATA_DIR=str(self.data_dir),
        )
        for spec in SERVICES:
            if spec.name != "gateway":
                env[f"GATEWAY_{spec.name.upper().replace('-', '_')}_URL"] = self.url_of(spec)
        # Services that call each other directly: on this system's ports, not their defaults.
        by_name = {spec.name: spec for spec in SERVICES}
        env.setdefault("SUBMITTER_REQUEST_API_URL", self.url_of(by_name["request-api"]))
        env.setdefault("MONITOR_SUBMITTER_URL", self.url_of(by_name["submitter"]))
        env.setdefault("SUBMITTER_MONITOR_URL", self.url_of(by_name["monitor"]))
        env.setdefault("MONITOR_REQUEST_API_URL", self.url_of(by_name["request-api"]))
        env.setdefault("MONITOR_CYCLE_RUNNER_URL", self.url_of(by_name["cycle-runner"]))
        env.setdefault("REQUEST_API_PUBLIC_URL", self.gateway_url)  # links in mails
        return env

    def start_couch(self) -> str:
        if url := os.environ.get("PRODFLOW_COUCHDB_URL"):
            wait_until_up(url)
            return url
        log_path = self.data_dir / "logs" / "couchdb.log"
        if self.couch_release is not None:
            self.couch = LocalCouchDB3Server(
                dist=self.couch_release, data_dir=self.data_dir / "couchdb3", port=self.couch_port, log_path=log_path
            )
        else:
            self.couch = LocalCouchServer(
                data_dir=self.data_dir / "couch", port=self.couch_port, host=self.host, log_path=log_path
            )
        return self.couch.start()

    def start(self, timeout_s: float = 90.0) -> None:
        """Start everything and wait until every process answers its health check."""
        for folder in (self.data_dir, self.data_dir / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        couch_url = self.start_couch()
        self.env = self.environment(couch_url)
        if self.member_accounts:
            self.service_env = asyncio.run(self.set_up_member_accounts(couch_url))
        for spec in SERVICES:
            self._launch(spec)
        deadline = time.monotonic() + timeout_s
        for spec in SERVICES:
            self._wait_healthy(spec, deadline)
        # 'prodflow login --data-dir' finds this system by its data folder, whatever its port.
        self.gateway_url_file().write_text(self.gateway_url + "\n")

    async def set_up_member_accounts(self, couch_url: str) -> dict[str, dict[str, str]]:
        """The admin step of member accounts: users and ``_security`` set up, each service's variables returned."""
        env = self.env
        admin_auth = (
            (env["PRODFLOW_COUCHDB_USER"], env.get("PRODFLOW_COUCHDB_PASSWORD", ""))
            if env.get("PRODFLOW_COUCHDB_USER")
            else None
        )
        events_db = env.get("PRODFLOW_EVENTS_DB", "prodflow-events")
        prefix = env.get("SUBMITTER_JOB_DATABASE_PREFIX", "")
        accounts = service_accounts(events_db, [prefix + name for name in JOB_DATABASES])
        passwords = {account.service: secrets.token_urlsafe(24) for account in accounts}
        async with CouchClient(couch_url, auth=admin_auth) as admin:
            if "couchdb" not in await admin.info():
                raise RunnerError("member accounts need Apache CouchDB 3: PouchDB Server enforces no _security")
            roles = (await admin.request("GET", "_session"))["userCtx"]["roles"]
            if "_admin" not in roles:
                raise RunnerError("member accounts are set up by a server admin: give PRODFLOW_COUCHDB_URL one's")
            shards = int(env.get("PRODFLOW_COUCHDB_JOB_SHARDS") or DEFAULT_JOB_SHARDS)
            await set_up_service_accounts(admin, accounts, passwords, events_db=events_db, job_shards=shards)
        bare = split_userinfo(couch_url)[0]
        return {
            account.service: {
                "PRODFLOW_COUCHDB_URL": bare,
                "PRODFLOW_COUCHDB_USER": account.user,
                "PRODFLOW_COUCHDB_PASSWORD": passwords[account.service],
            }
            for account in accounts
        }

    def _launch(self, spec: ServiceSpec) -> None:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            spec.factory,
            "--factory",
            "--host",
            self.host,
            "--port",
            str(self.port + spec.offset),
            "--no-access-log",
        ]
        if spec.niceness:
            command = ["nice", "-n", str(spec.niceness), *command]  # nice execs the service: the same pid
        with open(self.log_of(spec.name), "ab") as log:
            self.procs[spec.name] = subprocess.Popen(
                command,
                env={**self.env, **self.service_env.get(spec.name, {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, name: str) -> None:
        """SIGKILL one process (a service, the gateway or ``couchdb``) and reap it: a crash, for fault tests."""
        proc = self.couch.proc if name == "couchdb" and self.couch else self.procs.get(name)
        if proc is None:
            raise RunnerError(f"no running process {name!r}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, name: str, timeout_s: float = 90.0) -> None:
        """Start one process again after :meth:`kill` (CouchDB on its port and data) and wait until healthy."""
        if name == "couchdb":
            if self.couch is None:
                raise RunnerError("the CouchDB-API server was not started by this runner")
            self.couch.start()
            return
        spec = next(s for s in SERVICES if s.name == name)
        self._launch(spec)
        self._wait_healthy(spec, time.monotonic() + timeout_s)

    def _wait_healthy(self, spec: ServiceSpec, deadline: float) -> None:
        proc = self.procs[spec.name]
        # The gateway's /healthz reports the whole system; its own liveness is the OpenAPI route.
        url = self.url_of(spec) + ("/docs" if spec.name == "gateway" else "/healthz")
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RunnerError(f"{spec.name} exited with {proc.returncode}; see {self.log_of(spec.name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RunnerError(f"{spec.name} did not become healthy; see {self.log_of(spec.name)}")

    def log_of(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def gateway_url_file(self) -> Path:
        """Where the gateway's URL is written once everything is up."""
        return self.data_dir / GATEWAY_URL_FILE

    def admin_token_file(self) -> Path:
        """Where the gateway wrote the first admin token (mode 0600)."""
        return self.data_dir / "gateway-admin-token"

    def admin_token(self) -> str | None:
        """The first admin token, if the gateway wrote one in this data folder."""
        path = self.admin_token_file()
        return path.read_text().strip() if path.exists() else None

    def died(self) -> str | None:
        """The name of a process that exited on its own, if any."""
        return next((name for name, proc in self.procs.items() if proc.poll() is not None), None)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the gateway first, then the services, then CouchDB; SIGKILL what ignores SIGTERM."""
        for name in reversed(list(self.procs)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        if self.couch is not None:
            self.couch.stop()
            self.couch = None


def run_until_interrupted(system: EmbeddedSystem, say: Callable[[str], None] = print) -> int:
    """Start ``system``, print where it is, and keep it up until SIGINT/SIGTERM; returns the exit code."""
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = say
    code = 0
    try:
        system.start()
        out(f"prodflow is up: gateway {system.gateway_url}  (API docs {system.gateway_url}/docs)")
        for spec in SERVICES[:-1]:
            out(f"  {spec.name:<13} {system.url_of(spec)}")
        couch_url = system.couch.url if system.couch else os.environ.get("PRODFLOW_COUCHDB_URL", "")
        out(f"  couchdb       {redact_url(couch_url)}")  # never the password of PRODFLOW_COUCHDB_URL
        if system.member_accounts:
            out("  accounts      each service its own CouchDB account: prodflow-<service>")
        out(f"  data          {system.data_dir}   logs in {system.data_dir / 'logs'}")
        # Where the token is, never the token: this output often ends up in a log file.
        token_file = system.admin_token_file()
        if token_file.exists():
            login = f"prodflow login --data-dir {system.data_dir}"
            out(f"  admin token   in {token_file}  ({login})")
        else:
            out("  admin token   (none in the data folder: use a token you made)")
        out(f"  pids          {' '.join(str(p.pid) for p in system.procs.values())}")
        out("Press Ctrl-C to stop.")
        while not stopping:
            if dead := system.died():
                out(f"{dead} stopped unexpectedly; see {system.log_of(dead)}; stopping everything")
                code = 1
                break
            time.sleep(0.5)
    except RunnerError as exc:
        out(f"prodflow up failed: {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        system.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out("prodflow stopped.")
    return code
