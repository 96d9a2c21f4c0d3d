"""Helpers of request-api's tests (imported by conftest.py and the tests; conftest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import email
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from prodflow_core.couch.client import CouchClient
from prodflow_core.events import EventPublisher, make_event
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_request_api.app import create_app
from prodflow_request_api.settings import RequestApiSettings

SECRET = "request-api-test-secret"


@dataclass
class Inbox:
    """What the test SMTP server received."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port; can be started late to play an outage."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def headers(user: str, *roles: str, experiments: tuple[str, ...] = ("snoplus", "legend")) -> dict[str, str]:
    """The identity header the gateway would forward."""
    identity = Identity(user=user, experiments=frozenset(experiments), roles=frozenset(roles))
    return {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=86_400)}


ALICE = headers("alice", "requester")
BOB = headers("bob", "requester")
MANAGER = headers("maria", "manager")
ADMIN = headers("root", "admin", experiments=("*",))
READER = headers("rita", "reader")
LEGEND_ONLY = headers("lea", "manager", experiments=("legend",))


def make_settings(tmp_path: Path, couch_url: str, smtp_port: int | None) -> RequestApiSettings:
    return RequestApiSettings(
        couchdb_url=couch_url,
        events_db=f"events-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path,
        identity_secret=SECRET,
        log_json=False,
        smtp_host="127.0.0.1" if smtp_port else None,
        smtp_port=smtp_port or 25,
        smtp_from="prodflow@snolab.example.org",
        smtp_timeout_s=2.0,
        mail_retry_s=0.2,
        mail_retry_max_s=0.5,
        outbox_poll_s=0.1,
        events_longpoll_s=0.5,
    )


@dataclass
class Api:
    """The running app, a client to it and its settings."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: RequestApiSettings
    couch: CouchClient

    async def events(self, short_type: str | None = None) -> list[dict[str, Any]]:
        """Every event in the app's event stream (of one type), oldest first."""
        rows = (await self.couch.db(self.settings.events_db).all_docs(include_docs=True)).rows
        docs = [row["doc"] for row in rows if row["id"].startswith("evt-")]
        docs.sort(key=lambda d: d["id"])
        return [d for d in docs if short_type is None or d["type"] == f"org.prodflow.{short_type}"]


@contextlib.asynccontextmanager
async def running(settings: RequestApiSettings) -> AsyncIterator[Api]:
    """The app with its lifespan (SQL, CouchDB, outbox and event workers) and an HTTP client to it."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://request-api") as client,
        CouchClient(settings.couchdb_url) as couch,
    ):
        try:
            yield Api(app, client, settings, couch)
        finally:
            await couch.db(settings.events_db).drop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Wait until ``check`` is true (background workers deliver asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.05)


def form(**changes: Any) -> dict[str, Any]:
    """A valid SNO+ request body, with ``changes`` applied (a value of ``None`` removes the field)."""
    body: dict[str, Any] = {
        "experiment": "snoplus",
        "title": "Bi214 in water, runs of the water phase",
        "kind": "production",
        "rat_v": "7.0.15",
        "modules": [
            {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100151, 100152], "priority": 100},
            {"module": "WaterPmt_Betagammas", "n_ev": 985000000, "ev_per_run": 290000, "template": {"radius": 7250}},
        ],
        "label": "2026-11_WaterBi214_v1",
        "contacts": ["alice@snolab.example.org"],
        "site": "sfu-slurm",
        "justification": "background model of the water phase",
    }
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def fields(problem: dict[str, Any]) -> dict[str, str]:
    """field → error type of a problem+json body."""
    return {e["field"]: e["type"] for e in problem.get("errors") or []}


async def approve(api: Api, **changes: object) -> str:
    request_id = str((await api.client.post("/api/requests", json=form(**changes), headers=ALICE)).json()["id"])
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    assert (await api.client.post(f"/api/requests/{request_id}/approve", headers=MANAGER)).status_code == 200
    return request_id


async def publish(api: Api, source: str, short_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
    publisher = EventPublisher(api.couch.db(api.settings.events_db), source)
    event = make_event(
        short_type, source, subject=data.get("label"), experiment="snoplus", data=data, event_id=event_id
    )
    await publisher.publish(event)
    return event.id


async def state_becomes(api: Api, request_id: str, state: str) -> dict[str, Any]:
    async def reached() -> bool:
        return bool((await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["state"] == state)

    await eventually(reached, what=f"{request_id} {state}")
    return dict((await api.client.get(f"/api/requests/{request_id}", headers=READER)).json())


def campaign(request_id: str | None, label: str = "2026-11_WaterBi214_v1") -> dict[str, Any]:
    return {
        "campaign_id": "camp-000007",
        "request_id": request_id,
        "label": label,
        "database": "data-production",
        "site": "sfu-slurm",
        "pass": 1,
        "jobs": 3399,
    }


def parsed(envelope: Envelope) -> EmailMessage:
    """The message an SMTP envelope carries."""
    message = email.message_from_bytes(envelope.original_content or envelope.content, policy=default)  # type: ignore[arg-type]
    assert isinstance(message, EmailMessage)
    return message


def subject(message: EmailMessage) -> str:
    """The subject; a long one is folded at its start, which Python's parser keeps as a leading space."""
    return str(message["Subject"]).strip()


def text_of(message: EmailMessage) -> str:
    """The plain-text part, with its lines ended by ``\\n``."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")
