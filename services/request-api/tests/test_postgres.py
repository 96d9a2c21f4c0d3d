"""request-api on a real PostgreSQL (the docker-compose set-up), not only SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from request_api_support import (
    ALICE,
    BOB,
    MANAGER,
    READER,
    Api,
    SmtpServer,
    approve,
    campaign,
    eventually,
    fields,
    form,
    headers,
    make_settings,
    parsed,
    publish,
    running,
    state_becomes,
    subject,
    text_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped afterwards."""
    name = f"request_api_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_api(tmp_path: Path, couch_url: str, smtp: SmtpServer, pg_url: str) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path, couch_url, smtp.port).model_copy(update={"database_url": pg_url})
    async with running(settings) as started:
        yield started


async def test_lifecycle_on_postgresql(pg_api: Api, api: Api, smtp: SmtpServer) -> None:
    api_pg = pg_api
    created = await api_pg.client.post("/api/requests", json=form(), headers=ALICE)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    taken = await api_pg.client.post("/api/requests", json=form(), headers=BOB)
    assert fields(taken.json()) == {"label": "label_taken"}
    await api_pg.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    answers = await asyncio.gather(
        *(
            api_pg.client.post(f"/api/requests/{request_id}/approve", headers=h)
            for h in (MANAGER, headers("mark", "manager"))
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    on_pg = (await api_pg.client.get(f"/api/requests/{request_id}/jobs.json", headers=READER)).content

    # the same request on SQLite gives the same bytes
    other = (await api.client.post("/api/requests", json=form(), headers=ALICE)).json()["id"]
    await api.client.post(f"/api/requests/{other}/submit", headers=ALICE)
    await api.client.post(f"/api/requests/{other}/approve", headers=MANAGER)
    assert (await api.client.get(f"/api/requests/{other}/jobs.json", headers=READER)).content == on_pg

    async def both_mailed() -> bool:
        return len(smtp.inbox.envelopes) == 2

    await eventually(both_mailed, what="two approval mails")
    page = (await api_pg.client.get("/api/requests", params={"state": "approved"}, headers=READER)).json()
    assert page["total"] == 1 and page["items"][0]["jobs"] == 3399
    runs = (await api_pg.client.get("/api/catalog/snoplus/runs", params={"limit": 1}, headers=READER)).json()
    assert runs["total"] == 1300


async def test_outcome_digest_and_opt_out_on_postgresql(
    tmp_path: Path, couch_url: str, smtp: SmtpServer, pg_url: str
) -> None:
    settings = make_settings(tmp_path, couch_url, smtp.port).model_copy(
        update={"database_url": pg_url, "digest_gather_s": 0.3}
    )
    async with running(settings) as api:
        opted = await api.client.put(
            "/api/notifications/me", json={"address": "snoplus-vo-support@example.org", "digest": False}, headers=BOB
        )
        assert opted.status_code == 200
        lists = await api.client.put(
            "/api/notifications/experiments/snoplus", json={"support_list": ["ops@example.org"]}, headers=MANAGER
        )
        assert lists.json()["digest_to"] == ["ops@example.org"] and lists.json()["opted_out"]["digest"] == [
            "snoplus-vo-support@example.org"
        ]
        request_id = await approve(api)
        await publish(api, "/services/submitter", "campaign.created", campaign(request_id))
        reasons = {f"job:2026-11_WaterBi214_v1:WaterBi214Run:{n}:0:p1": "exit code 3" for n in range(40)}
        failed = {"label": "2026-11_WaterBi214_v1", "job_ids": list(reasons), "reasons": reasons, "count": 40}
        await publish(api, "/services/monitor", "job.failed", failed)
        counts = {"completed": 3359, "failed": 40}
        await publish(api, "/services/monitor", "label.completed", {"label": "2026-11_WaterBi214_v1", "counts": counts})
        await state_becomes(api, request_id, "failed")

        async def three_mails() -> bool:  # approval, outcome, digest
            return len(smtp.inbox.envelopes) == 3

        await eventually(three_mails, what="approval, outcome and digest mails")
        by_subject = {subject(parsed(e)): e for e in smtp.inbox.envelopes}
        outcome = by_subject[f"[prodflow] snoplus request {request_id} failed: 2026-11_WaterBi214_v1"]
        assert "WaterBi214Run: 3 (40 jobs)" in text_of(parsed(outcome))
        digest = by_subject["[prodflow] snoplus failure digest: 40 jobs in 1 labels"]
        assert digest.rcpt_tos == ["ops@example.org"]
