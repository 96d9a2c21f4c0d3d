"""A monitor's loop on its own, for tests that drive it step by step (test modules cannot import each other)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prodflow_core.couch import CouchClient
from prodflow_core.counts import JobCounter, count_tables
from prodflow_core.events import EventPublisher
from prodflow_core.sql import create_tables, make_engine
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sites import SiteDirectory


@contextlib.asynccontextmanager
async def monitor_loop(couch: CouchClient, settings: MonitorSettings) -> AsyncIterator[MonitorLoop]:
    """A monitor's loop on its own, driven by the test (no app, no workers): its SQL counts and site directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sql_url())
    await create_tables(engine, count_tables())
    directory = SiteDirectory(settings.submitter_url, settings.identity_secret)
    events = EventPublisher(couch.db(settings.events_db), "/test")
    await events.db.ensure()
    try:
        loop = MonitorLoop(couch, settings, directory, events, JobCounter(engine, "t"))
        await loop.prepare()
        yield loop
    finally:
        await directory.aclose()
        await engine.dispose()
