"""The parts of a running submitter that routes and workers share (built once in the app's lifespan)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from prodflow_core.couch import ChangesFollower, CouchDatabase
from prodflow_core.counts import JobCounter
from prodflow_core.events import EventPublisher
from prodflow_core.problems import Problem
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_submitter.request_api import RequestApi
from prodflow_submitter.settings import SubmitterSettings


@dataclass
class Runtime:
    """Settings, SQL sessions, both job databases, the event publisher, the request-api client, the kept counts."""

    settings: SubmitterSettings
    sessions: async_sessionmaker[AsyncSession]
    databases: dict[str, CouchDatabase]
    events: EventPublisher
    request_api: RequestApi
    counter: JobCounter
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when new jobs may be waiting: the submission loop runs a round at once."""
    on_created: Callable[[str, list[dict[str, Any]]], None] | None = None
    """Told the job documents a campaign just created (database, documents): the queue takes them at once,
    without waiting for its ``_changes`` reader to get past other campaigns' documents."""

    feeds: dict[str, ChangesFollower] = field(default_factory=dict)
    """The follower of each job database that keeps :attr:`counter` (see :mod:`prodflow_submitter.job_feed`)."""

    def db(self, name: str) -> CouchDatabase:
        return self.databases[name]

    async def counted_to_now(self, database: str) -> None:
        """Wait until the kept counts hold every change made to ``database`` before this call (read-your-writes
        for operations that select jobs from the counts' ledger); a 503 problem if its feed is not back in time.
        """
        feed = self.feeds.get(database)
        if feed is None or not await feed.handled_to_now(self.settings.counted_wait_s):
            raise Problem(503, "Service Unavailable", f"the job counts of {database} are not current; try again",
                          kind="unavailable")  # fmt: skip


async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
