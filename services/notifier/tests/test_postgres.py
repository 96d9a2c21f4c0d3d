"""The notifier on a real PostgreSQL (the docker-compose set-up), not only SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from notifier_support import ADMIN, Receiver, events_db, flow_events, make_settings, running, wait_until
from prodflow_core.couch.client import CouchClient

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped afterwards."""
    name = f"notifier_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_deliveries_in_order_replay_and_a_trimmed_log_on_postgresql(
    tmp_path: Path, couch_url: str, pg_url: str
) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver(answer=lambda n: 500 if n == 2 else 200)  # one retry on the way
        flow = [e for _ in range(4) for e in flow_events()]  # 56 events: the log is trimmed after 50 attempts
        settings = make_settings(tmp_path, couch_url, db.name, database_url=pg_url, deliveries_kept=20)
        with receiver.serving():
            async with running(settings) as notifier:
                made = await notifier.subscribe(receiver.url)
                receiver.secrets.append(made["secret"])
                await notifier.events.publish_many(flow[:10])
                await notifier.events.publish_many(flow[10:])
                await wait_until(lambda: len(receiver.accepted_ids()) == len(flow), what="every event")
                path = f"/api/webhooks/{made['id']}"
                answer = await notifier.client.post(
                    f"{path}/replay", json={"from_event_id": flow[-3].id}, headers=ADMIN
                )
                assert answer.json() == {"queued": 3}
                await wait_until(lambda: len(receiver.accepted_ids()) == len(flow) + 3, what="the replay")

                async def written() -> bool:
                    return bool((await notifier.client.get(path, headers=ADMIN)).json()["pending"] == 0)

                await wait_until(written, what="the last outcome's commit")
                log = (await notifier.client.get(f"{path}/deliveries?limit=1000", headers=ADMIN)).json()["items"]
                shown = (await notifier.client.get(path, headers=ADMIN)).json()
        assert receiver.accepted_ids() == [e.id for e in flow] + [e.id for e in flow[-3:]]
        assert all(r.verified for r in receiver.got)
        assert 20 <= len(log) < 50 and log[0]["event_id"] == flow[-1].id
        assert shown["pending"] == 0 and shown["state"] == "ok"
        await db.drop()
