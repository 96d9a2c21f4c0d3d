"""Failure digests: tallies from events, one mail per interval to the support list, nothing when nothing failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prodflow_core.events import EventPublisher, make_event
from prodflow_request_api.digests import digest_mail, failure_kind, record, tallies
from prodflow_request_api.models import FailureTallyRow
from request_api_support import (
    MANAGER,
    READER,
    Api,
    SmtpServer,
    eventually,
    headers,
    make_settings,
    parsed,
    publish,
    running,
    subject,
    text_of,
)
from sqlmodel import col, select

OPS = "ops@snoplus.example.org"
SHIFTER = "shifter@snoplus.example.org"
LABELS = ("2026-11_Tl208_v1", "2026-11_Bi214_v1", "2026-11_Po210_v1")


def job_id(label: str, n: int, module: str = "ScintFit_2p2Tl208") -> str:
    return f"job:{label}:{module}:{300000 + n}:0:p1"


def failed(label: str, jobs: range, reason: str, site: str, short_type: str = "job.failed") -> dict[str, Any]:
    ids = [job_id(label, n) for n in jobs]
    return {
        "label": label,
        "database": "data-production",
        "status": "failed" if short_type == "job.failed" else "waiting",
        "job_ids": ids,
        "count": len(ids),
        "reasons": {i: reason for i in ids},
        "attempts": {i: 3 for i in ids},
        "sites": {i: site for i in ids},
    }


def test_reasons_sort_into_kinds() -> None:
    assert failure_kind("exit code 1 (segfault)", retried=False) == "failed"
    assert failure_kind("lost by the backend; attempts exhausted (3/3)", retried=False) == "lost"
    assert failure_kind("outputs not transferred after 5 tries: 503; attempts exhausted", retried=False) == "partFail"
    assert failure_kind("retry 2/3: exit code 137", retried=True) is None  # an ordinary retry is no news
    assert failure_kind("retry 2/3: lost by the backend", retried=True) == "lost, retried"


def test_one_event_makes_one_row_per_site_module_kind_and_code() -> None:
    data = failed(LABELS[0], range(10), "exit code 1", "sfu-slurm")
    data["reasons"][job_id(LABELS[0], 0)] = "exit code 137"
    event = make_event("job.failed", "/services/monitor", experiment="snoplus", data=data)
    rows = tallies(event)
    assert [(r.site, r.module, r.kind, r.exit_code, r.count) for r in rows] == [
        ("sfu-slurm", "ScintFit_2p2Tl208", "failed", "1", 9),
        ("sfu-slurm", "ScintFit_2p2Tl208", "failed", "137", 1),
    ]
    mail = digest_mail("snoplus", rows, [OPS], "https://prodflow.example.org")
    assert f"== {LABELS[0]} ==" in mail.body and "site sfu-slurm: failed 10" in mail.body
    assert "ScintFit_2p2Tl208: exit 1 x9, exit 137 x1" in mail.body and mail.kind == "digest"


async def test_an_event_seen_twice_is_counted_once(api: Api) -> None:
    event = make_event(
        "job.failed", "/m", experiment="snoplus", data=failed(LABELS[0], range(5), "exit code 1", "sfu-slurm")
    )
    async with api.app.state.sessions() as session:
        assert await record(session, event) == 5
        await session.commit()
        assert await record(session, event) == 0
        await session.commit()
        rows = (await session.exec(select(FailureTallyRow))).all()
    assert sum(r.count for r in rows) == 5


@pytest.fixture
async def digesting(tmp_path: Path, couch_url: str, smtp: SmtpServer) -> AsyncIterator[Api]:
    """request-api with a short digest interval, SNO+'s support list set by a manager, one member opted out."""
    settings = make_settings(tmp_path, couch_url, smtp.port).model_copy(
        update={"digest_gather_s": 0.5, "digest_interval_s": 4.0}
    )
    async with running(settings) as api:
        lists = await api.client.put(
            "/api/notifications/experiments/snoplus", json={"support_list": [OPS, SHIFTER]}, headers=MANAGER
        )
        assert lists.status_code == 200, lists.text
        shifter = headers("sam", "reader")
        answer = await api.client.put(
            "/api/notifications/me", json={"address": SHIFTER, "digest": False}, headers=shifter
        )
        assert answer.status_code == 200
        yield api


async def test_a_burst_of_500_failures_in_3_labels_is_one_digest(digesting: Api, smtp: SmtpServer) -> None:
    api = digesting
    shown = (await api.client.get("/api/notifications/experiments/snoplus", headers=MANAGER)).json()
    assert shown["support_list"] == [OPS, SHIFTER] and shown["digest_to"] == [OPS]
    assert shown["opted_out"]["digest"] == [SHIFTER]
    assert (await api.client.get("/api/notifications/experiments/snoplus", headers=READER)).status_code == 403
    # ordinary retries are no failure: nothing is sent
    await publish(api, "/services/monitor", "job.retried", failed(LABELS[0], range(900, 950), "retry 2/3: exit 1", "a"))
    await asyncio.sleep(1.5)
    assert smtp.inbox.envelopes == []
    # 500 jobs failed beyond their retries, in 3 labels and 2 sites, announced in 6 events
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[0], range(0, 150), "exit code 1", "sfu-slurm"))
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[0], range(150, 200), "exit code 137", "ral"))
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[1], range(0, 200), "exit code 2", "sfu-slurm"))
    lost = "lost by the backend; attempts exhausted (3/3)"
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[2], range(0, 60), lost, "ral"))
    part = "outputs not transferred after 5 tries: 503; attempts exhausted (3/3)"
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[2], range(60, 90), part, "ral"))
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[2], range(90, 100), "exit code 1", "ral"))

    async def digested() -> bool:
        return len(smtp.inbox.envelopes) >= 1

    await eventually(digested, what="the digest")
    first_at = time.monotonic()
    (envelope,) = smtp.inbox.envelopes
    assert envelope.rcpt_tos == [OPS]
    mail = parsed(envelope)
    assert subject(mail) == "[prodflow] snoplus failure digest: 500 jobs in 3 labels"
    assert mail["List-Id"] == "prodflow digest mail of snoplus <digest.snoplus.prodflow.invalid>"
    text = text_of(mail)
    assert text.count("\n== ") == 3 and all(f"== {label} ==" in text for label in LABELS)
    assert "site sfu-slurm: failed 150" in text and "site ral: failed 50" in text
    assert "site ral: failed 10, lost 60, partFail 30" in text
    assert "prodflow notifications set --digest off" in text
    assert mail.get_body(preferencelist=("html",)) is not None
    # more failures within the interval wait for the next digest: one mail per interval, never one per job
    await publish(api, "/services/monitor", "job.failed", failed(LABELS[1], range(500, 507), "exit code 9", "ral"))
    await asyncio.sleep(2.0)
    assert len(smtp.inbox.envelopes) == 1

    async def second() -> bool:
        return len(smtp.inbox.envelopes) == 2

    await eventually(second, timeout_s=10, what="the next digest")
    assert time.monotonic() - first_at >= 3.5
    text = text_of(parsed(smtp.inbox.envelopes[1]))
    assert "7 jobs in 1 labels" in subject(parsed(smtp.inbox.envelopes[1])) and "site ral: failed 7" in text
    async with api.app.state.sessions() as session:
        left = (await session.exec(select(FailureTallyRow).where(col(FailureTallyRow.digested_at).is_(None)))).all()
    assert list(left) == []


async def test_a_drained_site_is_reported_to_every_experiment(digesting: Api, smtp: SmtpServer) -> None:
    data = {"site": "ral", "by": "maria", "reason": "drained by maria"}
    await publish_unscoped(digesting, "site.drained", data)

    async def digested() -> bool:
        return len(smtp.inbox.envelopes) == 2  # SNO+'s support list and LEGEND's mailing list

    await eventually(digested, what="the digests")
    mails = {subject(parsed(e)): e for e in smtp.inbox.envelopes}
    snoplus = mails["[prodflow] snoplus failure digest: 0 jobs in 0 labels, 1 sites drained"]
    assert snoplus.rcpt_tos == [OPS]
    assert "== sites drained by policy ==\n  site ral: drained (drained by maria)" in text_of(parsed(snoplus))
    assert "[prodflow] legend failure digest: 0 jobs in 0 labels, 1 sites drained" in mails


async def publish_unscoped(api: Api, short_type: str, data: dict[str, Any]) -> None:
    publisher = EventPublisher(api.couch.db(api.settings.events_db), "/services/submitter")
    await publisher.publish(make_event(short_type, "/services/submitter", subject=data["site"], data=data))
