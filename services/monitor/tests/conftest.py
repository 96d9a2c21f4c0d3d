"""Fixtures of monitor's tests: a stand-in for submitter's sites API, job documents, submission, settings.

submitter (the service that creates job documents and hands them to backends) is built alongside monitor;
these tests play its part with the same core functions it uses (``prodflow_core.jobdocs``, the real ``local``
backend), and serve its ``GET /api/sites`` contract (FORMATS.md "Site") from a small stand-in app.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Header, HTTPException
from prodflow_core.backends import Backend, BackendJob
from prodflow_core.couch import CouchDatabase
from prodflow_core.events import utc_now
from prodflow_core.identity import IDENTITY_HEADER, IdentityError, verify_identity
from prodflow_core.jobdocs import SUBMITTED, backend_job_name, job_id, job_output_dir, job_seed, transition
from prodflow_core.settings import DEFAULT_IDENTITY_SECRET
from prodflow_core.testing import serving
from prodflow_core.testing_sql import counts_engine
from prodflow_monitor.settings import MonitorSettings
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class SitesStandIn:
    """Serves ``GET /api/sites`` like submitter: a list of sites; refuses calls without a valid identity."""

    url: str = ""
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0
    callers: set[str] = field(default_factory=set)


def _sites_app(stand_in: SitesStandIn) -> FastAPI:
    app = FastAPI()

    @app.get("/api/sites")
    async def sites(identity: Annotated[str | None, Header(alias=IDENTITY_HEADER)] = None) -> list[dict[str, Any]]:
        try:
            who = verify_identity(identity or "", DEFAULT_IDENTITY_SECRET)
        except IdentityError as exc:
            raise HTTPException(401, str(exc)) from exc
        stand_in.calls += 1
        stand_in.callers.add(who.user)
        return list(stand_in.sites.values())

    return app


@pytest.fixture(scope="session")
def sites_api() -> Iterator[SitesStandIn]:
    """The session's stand-in of submitter's sites API (tests add their sites to ``.sites``)."""
    stand_in = SitesStandIn()
    with serving(_sites_app(stand_in)) as url:
        stand_in.url = url
        yield stand_in


def local_site(name: str, work_dir: Path, output_root: Path | None, se: str, **extra: Any) -> dict[str, Any]:
    """A site of the ``local`` backend in submitter's shape."""
    options: dict[str, Any] = {"work_dir": str(work_dir), "max_running": extra.pop("max_running", 64)}
    if output_root is not None:
        options["output_root"] = str(output_root)
    return {
        "name": name,
        "backend": "local",
        "storage_element": se,
        "max_running": 500,
        "max_attempts": 3,
        "retry_exit_codes": [137, 143],
        "max_walltime_s": None,
        "options": options,
        **extra,
    }


def job_doc(
    label: str,
    module: str,
    run: int,
    site: str,
    *,
    experiment: str = "snoplus",
    events: int = 1000,
    chunk: int = 0,
    pass_number: int = 1,
) -> dict[str, Any]:
    """A new (``waiting``) job document as submitter writes it (FORMATS.md)."""
    doc_id = job_id(label, module, run, chunk, pass_number)
    at = utc_now()
    return {
        "_id": doc_id,
        "type": "job",
        "experiment": experiment,
        "label": label,
        "request_id": None,
        "campaign_id": "camp-000001",
        "module": module,
        "run": run,
        "chunk": chunk,
        "pass": pass_number,
        "attempt": 1,
        "rat_v": "7.0.15",
        "ratdb_tag": None,
        "template": {},
        "priority": 0,
        "events": events,
        "seed": job_seed(doc_id),
        "site": site,
        "backend": None,
        "status": "waiting",
        "parent": None,
        "outputs": [],
        "software": {"name": "rat", "version": "7.0.15"},
        "history": [{"status": "waiting", "at": at, "reason": ""}],
        "created_at": at,
        "updated_at": at,
    }


async def submit_jobs(
    db: CouchDatabase,
    backend: Backend,
    docs: list[dict[str, Any]],
    output_root: Path,
    command: Callable[[dict[str, Any]], str],
) -> None:
    """Hand ``docs`` to ``backend`` and record them ``submitted`` (what submitter's site loop does)."""
    jobs = [
        BackendJob(name=backend_job_name(d), command=command(d), output_dir=job_output_dir(output_root, d["_id"]))
        for d in docs
    ]
    ids = await backend.submit(jobs)
    at = utc_now()
    moved = []
    for doc, backend_id in zip(docs, ids, strict=True):
        new = transition(doc, SUBMITTED, at, "handed to the backend")
        new["backend"] = {"name": backend.name, "id": backend_id, "state": "PENDING", "checked_at": at}
        moved.append(new)
    results = await db.bulk_docs(moved)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty SQLite database of the kept counts (a test module may define its own ``engine``)."""
    async with counts_engine(f"sqlite:///{tmp_path / 'monitor.sqlite'}") as made:
        yield made


@pytest.fixture
def monitor_settings(couch_url: str, tmp_path: Path, sites_api: SitesStandIn) -> MonitorSettings:
    """Settings of a monitor on fresh, uniquely named job databases and event stream."""
    suffix = uuid.uuid4().hex[:10]
    return MonitorSettings(
        couchdb_url=couch_url,
        data_dir=tmp_path / "monitor-data",
        events_db=f"events-{suffix}",
        databases=(f"data-production-{suffix}", f"data-processing-{suffix}"),
        submitter_url=sites_api.url,
        sites_ttl_s=5.0,
        cycle_s=0.5,
        changes_longpoll_s=2.0,
        lost_grace_s=3.0,
        transfer_backoff_s=0.2,
        log_json=False,
    )


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, every_s: float = 0.25) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(every_s)


async def all_docs(db: CouchDatabase, prefix: str = "") -> list[dict[str, Any]]:
    """Every document of ``db`` (optionally with ids starting with ``prefix``)."""
    params: dict[str, Any] = {"include_docs": True}
    if prefix:
        params.update(startkey=prefix, endkey=prefix + "\ufff0")
    return [row["doc"] for row in (await db.all_docs(**params)).rows if not row["id"].startswith("_design/")]


@dataclass(frozen=True)
class Kit:
    """The helpers above, handed to tests as a fixture (test modules cannot import conftest)."""

    local_site: Callable[..., dict[str, Any]] = local_site
    job_doc: Callable[..., dict[str, Any]] = job_doc
    submit_jobs: Callable[..., Awaitable[None]] = submit_jobs
    wait_until: Callable[..., Awaitable[None]] = wait_until
    all_docs: Callable[..., Awaitable[list[dict[str, Any]]]] = all_docs


@pytest.fixture(scope="session")
def kit() -> Kit:
    """Helpers: ``local_site``, ``job_doc``, ``submit_jobs``, ``wait_until``, ``all_docs``."""
    return Kit()


@pytest.fixture(scope="session")
def xrootd_se() -> Iterator[str]:
    """A real XRootD storage element on loopback (Debian's xrootd-server), adler32 enabled; yields its URL prefix."""
    import contextlib
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile

    from prodflow_core.couch.server import free_port

    binary = shutil.which("xrootd")
    if binary is None:
        pytest.skip("xrootd-server is not installed (scripts/apt-packages.txt lists it)")
    # Not below pytest's tmp folder: that one is private to root, and xrootd runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="prodflow-xrootd-"))
    (root / "data" / "store").mkdir(parents=True)
    port = free_port()
    (root / "xrd.cfg").write_text(
        f"xrd.port {port}\noss.localroot {root / 'data'}\nall.export /\nxrootd.chksum adler32\n"
    )
    root.chmod(0o755)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(root)], check=True)
    pid_file = root / "xrd.pid"
    subprocess.run(
        [binary, "-R", "nobody", "-c", str(root / "xrd.cfg"), "-l", str(root / "xrd.log"), "-b", "-s", str(pid_file)],
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in root.glob("xrd.log*"))
                pytest.fail(f"xrootd did not listen on {port}:\n{logs}")
            time.sleep(0.1)
    try:
        yield f"root://127.0.0.1:{port}//store"
    finally:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
