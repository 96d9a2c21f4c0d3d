"""Outcome mails over a real SMTP server: completed, failed, campaign cancelled; once each; opt-out; outages."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from request_api_support import (
    ALICE,
    MANAGER,
    READER,
    Api,
    SmtpServer,
    approve,
    campaign,
    eventually,
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

LABEL = "2026-11_WaterBi214_v1"
BETAGAMMAS = {"module": "WaterPmt_Betagammas", "n_ev": 985000000, "ev_per_run": 290000}  # 3397 jobs
BOB = "bob@queens.example.org"
BOB_H = headers("bob", "reader")


def outcome_mails(smtp: SmtpServer) -> list[EmailMessage]:
    """Mails other than the approval mail."""
    return [m for m in map(parsed, smtp.inbox.envelopes) if " approved: " not in str(m["Subject"])]


async def mails_arrive(smtp: SmtpServer, count: int, timeout_s: float = 10.0) -> None:
    async def arrived() -> bool:
        return len(outcome_mails(smtp)) >= count

    await eventually(arrived, timeout_s=timeout_s, what=f"{count} outcome mails")


async def run_to_production(api: Api, **changes: object) -> str:
    request_id = await approve(api, modules=[BETAGAMMAS], **changes)
    await publish(api, "/services/submitter", "campaign.created", campaign(request_id))
    await state_becomes(api, request_id, "submitted-to-production")
    return request_id


def label_completed(counts: dict[str, int]) -> dict[str, Any]:
    return {"label": LABEL, "database": "data-production", "counts": counts}


def failed_jobs(reasons: dict[str, str]) -> dict[str, Any]:
    return {
        "label": LABEL,
        "database": "data-production",
        "status": "failed",
        "job_ids": list(reasons),
        "count": len(reasons),
        "reasons": reasons,
        "attempts": {job_id: 3 for job_id in reasons},
        "sites": {job_id: "sfu-slurm" for job_id in reasons},
    }


async def test_a_completed_run_mails_its_contacts_once(api: Api, smtp: SmtpServer) -> None:
    request_id = await run_to_production(api, contacts=["alice@snolab.example.org", BOB])
    event_id = await publish(api, "/services/monitor", "label.completed", label_completed({"completed": 3397}))
    await state_becomes(api, request_id, "completed")
    await mails_arrive(smtp, 1)
    # the same outcome announced again (a later generation, at-least-once delivery) mails nobody again
    await publish(api, "/services/monitor", "label.completed", label_completed({"completed": 3397}), event_id + "X")
    await asyncio.sleep(1.0)
    (mail,) = outcome_mails(smtp)
    envelope = next(e for e in smtp.inbox.envelopes if subject(parsed(e)) == subject(mail))
    assert envelope.rcpt_tos == ["alice@snolab.example.org", BOB]  # the contacts, not the experiment's list
    assert subject(mail) == f"[prodflow] snoplus request {request_id} completed: {LABEL}"
    assert mail["List-Id"] == "prodflow outcome mail of snoplus <outcome.snoplus.prodflow.invalid>"
    assert mail["List-Unsubscribe"] == "<http://127.0.0.1:8000/api/notifications/me>"
    text = text_of(mail)
    assert "jobs:       completed 3397" in text
    assert "events:     985,000,000 done of 985,000,000 requested" in text
    assert "wall time:  00:00:0" in text
    assert f"uv run prodflow label exactly {LABEL} -o {LABEL}.exactly" in text
    assert f"uv run prodflow grab {LABEL} --to ./{LABEL}" in text
    assert "prodflow notifications set --outcome off" in text
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and f"{request_id} completed" in html.get_content()
    status = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
    assert [n["status"] for n in status] == ["sent", "sent"]


async def test_a_failed_run_names_failing_modules_and_exit_codes(api: Api, smtp: SmtpServer) -> None:
    request_id = await run_to_production(api)
    module = "WaterPmt_Betagammas"
    reasons = {f"job:{LABEL}:{module}:{run}:0:p1": "exit code 1 (segfault)" for run in range(1, 301)}
    reasons |= {f"job:{LABEL}:{module}:{run}:0:p1": "exit code 137 [OUT_OF_MEMORY]" for run in range(301, 398)}
    await publish(api, "/services/monitor", "job.failed", failed_jobs(reasons))
    await publish(api, "/services/monitor", "label.completed", label_completed({"completed": 3000, "failed": 397}))
    await state_becomes(api, request_id, "failed")
    await mails_arrive(smtp, 1)
    await asyncio.sleep(0.5)
    (mail,) = outcome_mails(smtp)
    assert subject(mail) == f"[prodflow] snoplus request {request_id} failed: {LABEL}"
    text = text_of(mail)
    assert "jobs:       completed 3000, failed 397" in text
    assert f"{module}: 1 (300 jobs), 137 (97 jobs)" in text
    assert f"http://127.0.0.1:8000/#/jobs?label={LABEL}&status=failed" in text
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and f'href="http://127.0.0.1:8000/#/jobs?label={LABEL}&amp;status=failed"' in str(
        html.get_content()
    )


async def test_a_cancelled_campaign_mails_once(api: Api, smtp: SmtpServer) -> None:
    request_id = await run_to_production(api)
    job_ids = [f"job:{LABEL}:WaterPmt_Betagammas:{run}:0:p1" for run in range(1, 11)]
    some = {"label": LABEL, "database": "data-production", "by": "maria", "reason": "", "whole": False}
    await publish(api, "/services/submitter", "jobs.cancelled", {**some, "job_ids": job_ids[:2]})
    whole = {**some, "job_ids": job_ids, "reason": "wrong macro", "whole": True}
    await publish(api, "/services/submitter", "jobs.cancelled", whole)
    await mails_arrive(smtp, 1)
    await publish(api, "/services/monitor", "label.completed", label_completed({"cancelled": 3397}))
    await state_becomes(api, request_id, "completed")
    await asyncio.sleep(1.0)
    (mail,) = outcome_mails(smtp)  # neither the hand-picked cancellation nor the label's end mails again
    assert subject(mail) == f"[prodflow] snoplus request {request_id} cancelled: {LABEL}"
    assert "cancelled by maria: wrong macro" in text_of(mail) and "jobs:       cancelled 10" in text_of(mail)


async def test_opting_out_is_honoured(api: Api, smtp: SmtpServer) -> None:
    answer = await api.client.put(
        "/api/notifications/me", json={"address": "Alice@snolab.example.org", "outcome": False}, headers=ALICE
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "user": "alice",
        "address": "alice@snolab.example.org",
        "approval": True,
        "outcome": False,
        "digest": True,
    }
    refused = await api.client.put("/api/notifications/me", json={"outcome": "no"}, headers=ALICE)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    taken = await api.client.put("/api/notifications/me", json={"address": "alice@SNOLAB.example.org"}, headers=BOB_H)
    assert taken.status_code == 409 and taken.json()["type"].endswith("/address-taken")
    request_id = await run_to_production(api, contacts=["alice@snolab.example.org", BOB])
    await publish(api, "/services/monitor", "label.completed", label_completed({"completed": 3397}))
    await state_becomes(api, request_id, "completed")
    await mails_arrive(smtp, 1)
    await asyncio.sleep(0.5)
    approval = next(e for e in smtp.inbox.envelopes if " approved: " in str(parsed(e)["Subject"]))
    assert "alice@snolab.example.org" in approval.rcpt_tos  # approval mails were left on
    outcome = [e for e in smtp.inbox.envelopes if " completed: " in str(parsed(e)["Subject"])]
    assert [e.rcpt_tos for e in outcome] == [[BOB]]
    mine = (await api.client.get("/api/notifications/me", headers=ALICE)).json()
    assert mine["outcome"] is False and mine["approval"] is True


async def test_nobody_left_means_no_mail(api: Api, smtp: SmtpServer) -> None:
    await api.client.put(
        "/api/notifications/me", json={"address": "alice@snolab.example.org", "outcome": False}, headers=ALICE
    )
    request_id = await run_to_production(api)
    await publish(api, "/services/monitor", "label.completed", label_completed({"completed": 3397}))
    await state_becomes(api, request_id, "completed")
    await asyncio.sleep(1.0)
    assert outcome_mails(smtp) == []


async def test_outage_and_restart_between_commit_and_send(
    tmp_path: Path, couch_url: str, smtp_down: SmtpServer
) -> None:
    """The request moves and its mail is committed while SMTP is down; the service stops before it could send;
    after the restart (and the server's return) the mail goes out exactly once, even if the event comes again."""
    settings = make_settings(tmp_path, couch_url, smtp_down.port)
    async with running(settings) as api:
        request_id = await run_to_production(api)
        event = label_completed({"completed": 3000, "failed": 397})
        event_id = await publish(api, "/services/monitor", "label.completed", event)
        await state_becomes(api, request_id, "failed")

        async def tried() -> bool:
            mails = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
            return len(mails) == 2 and all(m["attempts"] >= 1 and m["last_error"] for m in mails)

        await eventually(tried, what="failed attempts during the outage")
    smtp_down.start()
    async with running(settings.model_copy(update={"events_db": settings.events_db + "-2"})) as api:
        await mails_arrive(smtp_down, 1, timeout_s=15)
        await publish(api, "/services/monitor", "label.completed", event, event_id)  # delivered once more
        await asyncio.sleep(1.0)
        assert len(outcome_mails(smtp_down)) == 1 and len(smtp_down.inbox.envelopes) == 2
        mails = (await api.client.get(f"/api/requests/{request_id}", headers=MANAGER)).json()["notifications"]
        assert [m["status"] for m in mails] == ["sent", "sent"]


async def test_an_smtp_outage_delays_the_outcome_mail(api: Api, smtp: SmtpServer) -> None:
    request_id = await run_to_production(api)

    async def approval_sent() -> bool:
        return len(smtp.inbox.envelopes) == 1

    await eventually(approval_sent, what="the approval mail")
    smtp.stop()  # the mail server goes away
    await publish(api, "/services/monitor", "label.completed", label_completed({"completed": 3397}))
    await state_becomes(api, request_id, "completed")  # the request moves all the same

    async def retried() -> bool:
        mails = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
        return len(mails) == 2 and mails[1]["attempts"] >= 2 and mails[1]["status"] == "pending"

    await eventually(retried, what="retries during the outage")
    smtp.start()  # and comes back on the same port
    await mails_arrive(smtp, 1, timeout_s=15)
    await asyncio.sleep(1.0)
    assert len(outcome_mails(smtp)) == 1 and len(smtp.inbox.envelopes) == 2
