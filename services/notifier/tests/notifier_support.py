"""Helpers of the notifier's tests: identities, settings, the app in the test's loop, and a real receiver.

The receiver is a Starlette app served by uvicorn on a loopback port; it checks every delivery's signature with
the ``standardwebhooks`` package (the reference implementation, independent of ours) and records what it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.server import free_port
from prodflow_core.events import CloudEvent, EventPublisher, make_event
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.testing import serving
from prodflow_notifier.app import create_app
from prodflow_notifier.settings import NotifierSettings
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET = "notifier-test-secret"


def headers(user: str, *roles: str, experiments: tuple[str, ...] = ("snoplus",)) -> dict[str, str]:
    """The identity header the gateway would forward."""
    identity = Identity(user=user, experiments=frozenset(experiments), roles=frozenset(roles))
    return {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=86_400)}


ADMIN = headers("root", "admin", experiments=("*",))
MANAGER = headers("maria", "manager")
READER = headers("rita", "reader")


def make_settings(tmp_path: Path, couch_url: str, events_db: str, **overrides: Any) -> NotifierSettings:
    """Settings with tiny pauses, and loopback allowed (the test's receivers listen there)."""
    values: dict[str, Any] = {
        "couchdb_url": couch_url,
        "events_db": events_db,
        "data_dir": tmp_path,
        "identity_secret": SECRET,
        "log_json": False,
        "allowed_networks": ["127.0.0.1/32"],
        "retry_base_s": 0.1,
        "retry_max_s": 1.0,
        "poll_s": 0.5,
        "events_longpoll_s": 1.0,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 3.0,
        **overrides,
    }
    return NotifierSettings(**values)


@dataclass
class Notifier:
    """The running app, a client to it and the event stream it follows."""

    app: FastAPI
    client: httpx.AsyncClient
    events: EventPublisher

    async def subscribe(self, url: str, **fields: Any) -> dict[str, Any]:
        """Create a subscription (as the admin unless ``as_`` says otherwise); the answer, with its secret."""
        who = fields.pop("as_", ADMIN)
        body = {"url": url, "event_types": ["org.prodflow.*"], "experiments": ["snoplus"], **fields}
        answer = await self.client.post("/api/webhooks", json=body, headers=who)
        assert answer.status_code == 201, answer.text
        made: dict[str, Any] = answer.json()
        return made


@contextlib.asynccontextmanager
async def running(settings: NotifierSettings) -> AsyncIterator[Notifier]:
    """The app with its lifespan (SQL, CouchDB, follower, deliveries), ready: its follower has a position."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as client,
    ):
        await wait_until(lambda: _healthy(client), what="the notifier's follower to take its position")
        yield Notifier(app, client, app.state.events)


async def _healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/healthz")).status_code == 200


async def wait_until(check: Callable[[], Any], *, timeout_s: float = 20.0, what: str = "a condition") -> None:
    """Poll ``check`` (sync or async) until it is true."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass
class Received:
    """One delivery as the receiver saw it."""

    event_id: str
    at: float
    verified: bool
    signatures: int
    body: dict[str, Any]
    accepted: bool


@dataclass
class Receiver:
    """A webhook receiver: answers ``status`` (or what ``answer`` decides), verifies with ``secrets``."""

    port: int = field(default_factory=free_port)
    secrets: list[str] = field(default_factory=list)
    status: int = 200
    answer: Callable[[int], int] | None = None
    delay_s: float = 0.0
    got: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        """Event ids received, in arrival order (2xx answered or not)."""
        with self._lock:
            return [r.event_id for r in self.got]

    def accepted_ids(self) -> list[str]:
        """Ids of deliveries answered with a 2xx."""
        with self._lock:
            return [r.event_id for r in self.got if r.accepted]

    def _verify(self, body: bytes, request_headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, request_headers)
                return True
        return False

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        request_headers = dict(request.headers)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        with self._lock:
            n = len(self.got)
            status = self.answer(n) if self.answer is not None else self.status
            received = Received(
                event_id=request_headers.get("webhook-id", ""),
                at=time.monotonic(),
                verified=self._verify(body, request_headers),
                signatures=len(request_headers.get("webhook-signature", "").split()),
                body=json.loads(body),
                accepted=200 <= status < 300,
            )
            self.got.append(received)
        return Response(status_code=status, headers={"location": "http://127.0.0.1:1/"} if status == 307 else None)

    def app(self) -> Starlette:
        """The receiver's ASGI app."""
        return Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on this receiver's port (again, after a pause: the port is kept)."""
        with serving(self.app(), port=self.port) as url:
            yield url


def flow_events(label: str = "2026-12_Hello_v1", experiment: str = "snoplus") -> list[CloudEvent]:
    """Events of a production flow as the services emit them, in their order."""

    def emitted(short_type: str, source: str, data: dict[str, Any], subject: str | None = None) -> CloudEvent:
        return make_event(short_type, f"/services/{source}", subject=subject, experiment=experiment, data=data)

    job_ids = [f"job:{label}:Hello:{run}:0:p1" for run in range(1, 4)]
    events = [
        emitted("request.submitted", "request-api", {"request_id": "req-000001", "label": label}),
        emitted("request.approved", "request-api", {"request_id": "req-000001", "label": label, "kind": "production"}),
        emitted("campaign.created", "submitter", {"campaign_id": "camp-000001", "label": label}),
        emitted("jobs.submitted", "submitter", {"label": label, "database": "data-production", "count": 3}),
    ]
    for job_id in job_ids:
        events.append(emitted("job.running", "monitor", {"label": label, "status": "running", "job_ids": [job_id]}))
    for job_id in job_ids:
        events.append(emitted("job.completed", "monitor", {"label": label, "status": "completed", "job_ids": [job_id]}))
        events.append(emitted("output.registered", "monitor", {"outputs": [{"job_id": job_id, "name": "out.txt"}]}))
    events.append(emitted("label.completed", "monitor", {"label": label, "database": "data-production"}))
    events.append(emitted("request.completed", "request-api", {"request_id": "req-000001", "label": label}))
    return events


async def events_db(couch: CouchClient) -> CouchDatabase:
    """A fresh event stream (one shard, as services make it)."""
    db = couch.db(f"events-{uuid.uuid4().hex[:10]}")
    await db.ensure(shards=1)
    return db
