"""Helpers of submitter's tests (conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity, verify_identity
from prodflow_core.testing import serving
from prodflow_submitter.app import create_app
from prodflow_submitter.queue import SubmissionLoop
from prodflow_submitter.settings import SubmitterSettings

SECRET = "submitter-test-secret"
JOB_COMMAND = "echo {module} {run} {chunk} {events} {seed} > {label}_{module}_r{run}_s{chunk}_p{pass}.out"


def headers(user: str, *roles: str, experiments: tuple[str, ...] = ("snoplus", "legend")) -> dict[str, str]:
    """The identity header the gateway would forward."""
    identity = Identity(user=user, experiments=frozenset(experiments), roles=frozenset(roles))
    return {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=86_400)}


MANAGER = headers("maria", "manager")
ADMIN = headers("root", "admin")
READER = headers("rita", "reader")
LEGEND_MANAGER = headers("lea", "manager", experiments=("legend",))


def unique_label(stem: str = "L") -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"


def make_settings(tmp_path: Path, couch_url: str, request_api_url: str, **overrides: Any) -> SubmitterSettings:
    fields: dict[str, Any] = {
        "couchdb_url": couch_url,
        "events_db": f"events-{uuid.uuid4().hex[:10]}",
        "job_database_prefix": f"t{uuid.uuid4().hex[:8]}-",
        "data_dir": tmp_path / "data",
        "identity_secret": SECRET,
        "log_json": False,
        "request_api_url": request_api_url,
        "submit_interval_s": 0.2,
        "changes_longpoll_s": 0.5,
        "catalog_timeout_s": 2.0,
        "default_command_template": None,
        "embedded_local_site": True,
        **overrides,
    }
    return SubmitterSettings(**fields)


@dataclass
class Api:
    """The running submitter, a client to it, its settings and a CouchDB client."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: SubmitterSettings
    couch: CouchClient

    def db(self, name: str = "data-production") -> CouchDatabase:
        return self.couch.db(self.settings.job_database_prefix + name)

    @property
    def loop(self) -> SubmissionLoop:
        loop: SubmissionLoop = self.app.state.loop
        return loop

    async def events(self, short_type: str | None = None) -> list[dict[str, Any]]:
        rows = (await self.couch.db(self.settings.events_db).all_docs(include_docs=True)).rows
        docs = sorted((r["doc"] for r in rows if r["id"].startswith("evt-")), key=lambda d: d["time"])
        return [d for d in docs if short_type is None or d["type"] == f"org.prodflow.{short_type}"]

    async def jobs(self, label: str, database: str = "data-production") -> list[dict[str, Any]]:
        db = self.db(database)
        rows = (await db.all_docs(include_docs=True, startkey=f"job:{label}:", endkey=f"job:{label}:\ufff0")).rows
        return [r["doc"] for r in rows]

    async def close(self) -> None:
        for name in ("data-production", "data-processing"):
            await self.db(name).drop()
        await self.couch.db(self.settings.events_db).drop()


@contextlib.asynccontextmanager
async def running(settings: SubmitterSettings, *, drop: bool = True) -> AsyncIterator[Api]:
    """The app with its lifespan (SQL, CouchDB, submission loop, event follower) and a client to it.

    ``drop``: remove its CouchDB databases afterwards (``False`` to start it again on the same data).
    """
    app = create_app(settings)
    async with CouchClient(settings.couchdb_url) as couch:
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://submitter", timeout=120
                ) as client,
            ):
                yield Api(app, client, settings, couch)
        finally:
            if drop:
                await Api(app, httpx.AsyncClient(), settings, couch).close()


async def counted(api: Api, path: str, expected: dict[str, int]) -> dict[str, Any]:
    """``GET path`` once its kept ``counts`` (which follow the job feed) equal ``expected``; its body."""
    body: dict[str, Any] = {}

    async def matches() -> bool:
        nonlocal body
        body = (await api.client.get(path, headers=headers("rita", "reader"))).json()
        return bool(body.get("counts") == expected)

    await eventually(matches, what=f"counts {expected} at {path} (last: {body.get('counts')})")
    return body


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Wait until ``check`` is true (background workers act asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def fake_request_api(commands: dict[tuple[str, str], str], jobs_files: dict[str, bytes], calls: list[str]) -> FastAPI:
    """A FAKE of request-api: the two calls submitter makes (catalog module, jobs.json), checking the identity."""
    app = FastAPI()

    def _check(request: Request) -> Identity:
        identity = verify_identity(request.headers[IDENTITY_HEADER], SECRET)
        assert identity.user == "service:submitter" and identity.has_role("reader")
        calls.append(request.url.path)
        return identity

    @app.get("/api/catalog/{experiment}/modules/{module}")
    async def module(experiment: str, module: str, request: Request) -> Response:
        _check(request)
        command = commands.get((experiment, module))
        if command is None:
            return Response(status_code=404)
        return Response(content=json.dumps({"command": command}), media_type="application/json")

    @app.get("/api/requests/{request_id}/jobs.json")
    async def jobs_json(request_id: str, request: Request) -> Response:
        _check(request)
        if request_id not in jobs_files:
            return Response(status_code=404)
        return Response(content=jobs_files[request_id], media_type="application/json")

    return app


@contextlib.contextmanager
def fake_request_api_served(
    commands: dict[tuple[str, str], str], jobs_files: dict[str, bytes]
) -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    with serving(fake_request_api(commands, jobs_files, calls)) as url:
        yield url, calls


def jobs_file(label: str | None = None, *, runs: int = 10, per_run: int = 2, by_time: int = 5) -> dict[str, Any]:
    """A jobs.json of ``runs * per_run`` run-by-run jobs and ``by_time`` by-time jobs (modules in the FAKE catalog)."""
    modules: list[dict[str, Any]] = [
        {"module": "WaterBi214Run", "n_runs": per_run, "run_numbers": list(range(100000, 100000 + runs))}
    ]
    if by_time:
        modules.append({"module": "TeLoadedBipo212", "t_run": 1, "t_format": "day", "n_runs": by_time})
    body: dict[str, Any] = {"rat_v": "7.0.15", "modules": modules, "experiment": "snoplus"}
    if label:
        body["label"] = label
    return body


async def put_site(api: Api, name: str, backend: str = "local", **spec: Any) -> dict[str, Any]:
    body = {"backend": backend, "storage_element": "file:///tmp/se", **spec}
    response = await api.client.put(f"/api/sites/{name}", json=body, headers=ADMIN)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result
