"""The event outbox: an event whose publication fails is kept and published once CouchDB answers again."""

from __future__ import annotations

import pytest
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.server import free_port
from prodflow_core.events import EventPublisher
from prodflow_request_api.models import EventRow
from prodflow_request_api.outbox import Outbox
from request_api_support import ALICE, MANAGER, Api, eventually, form
from sqlmodel import col, select

pytestmark = pytest.mark.integration


async def unpublished(api: Api) -> list[EventRow]:
    async with api.app.state.sessions() as session:
        return list((await session.exec(select(EventRow).where(col(EventRow.published_at).is_(None)))).all())


async def test_events_wait_out_a_couchdb_outage(api: Api) -> None:
    outbox: Outbox = api.app.state.outbox
    working = outbox.publisher
    async with CouchClient(f"http://127.0.0.1:{free_port()}") as nowhere:  # nothing listens there
        outbox.publisher = EventPublisher(nowhere.db(api.settings.events_db), working.source)
        filed = await api.client.post("/api/requests", json=form(), headers=ALICE)
        request_id = filed.json()["id"]
        submitted = await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
        assert submitted.status_code == 200  # the change is made and answered although the stream is down
        approved = await api.client.post(f"/api/requests/{request_id}/approve", headers=MANAGER)
        assert approved.status_code == 200
        waiting = await unpublished(api)
        assert sorted(row.type for row in waiting) == ["request.approved", "request.submitted"]
        assert await api.events() == []
        outbox.publisher = working
        outbox.wake()

    async def published() -> bool:
        return not await unpublished(api) and len(await api.events()) == 2

    await eventually(published, what="events published after the outage")
    ids = sorted(event["id"] for event in await api.events())
    assert ids == sorted(row.event_id for row in waiting)  # the ids written with the change, so no duplicates
