"""Approval mails over a real SMTP server on loopback (aiosmtpd): recipients, attachment bytes, outages."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from request_api_support import ALICE, MANAGER, READER, Api, SmtpServer, eventually, form, make_settings, running

pytestmark = pytest.mark.integration

SNOPLUS_LIST = "snoplus-vo-support@example.org"  # the packaged catalog's SNO+ list


async def approve(api: Api, **changes: object) -> str:
    request_id = str((await api.client.post("/api/requests", json=form(**changes), headers=ALICE)).json()["id"])
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    answer = await api.client.post(f"/api/requests/{request_id}/approve", json={"note": "ok"}, headers=MANAGER)
    assert answer.status_code == 200, answer.text
    return request_id


def parsed(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


async def test_approval_mail_reaches_contacts_and_list_with_jobs_json(api: Api, smtp: SmtpServer) -> None:
    contacts = ["alice@snolab.example.org", "Bob@queens.example.org", "ALICE@snolab.example.org"]
    request_id = await approve(api, contacts=contacts)

    async def delivered() -> bool:
        return len(smtp.inbox.envelopes) == 1

    await eventually(delivered, what="approval mail")
    envelope = smtp.inbox.envelopes[0]
    assert envelope.mail_from == "prodflow@snolab.example.org"
    assert envelope.rcpt_tos == ["alice@snolab.example.org", "Bob@queens.example.org", SNOPLUS_LIST]
    message = parsed(envelope.original_content or envelope.content)  # type: ignore[arg-type]
    assert message["Subject"] == f"[prodflow] snoplus request {request_id} approved: 2026-11_WaterBi214_v1"
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["2026-11_WaterBi214_v1.jobs.json"]
    assert attachments[0].get_content_type() == "application/json"
    stored = (await api.client.get(f"/api/requests/{request_id}/jobs.json", headers=READER)).content
    assert attachments[0].get_payload(decode=True) == stored
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "approved by maria" in body.get_content() and "3399" in body.get_content()
    status = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
    assert status[0]["status"] == "sent" and status[0]["attempts"] == 1


async def test_an_smtp_outage_loses_nothing(tmp_path: Path, couch_url: str, smtp_down: SmtpServer) -> None:
    async with running(make_settings(tmp_path, couch_url, smtp_down.port)) as api:
        request_id = await approve(api)
        detail = f"/api/requests/{request_id}"

        async def tried_and_failed() -> bool:
            mails = (await api.client.get(detail, headers=READER)).json()["notifications"]
            return bool(mails) and mails[0]["attempts"] >= 2

        await eventually(tried_and_failed, what="failed delivery attempts")
        answer = (await api.client.get(detail, headers=READER)).json()
        assert answer["state"] == "approved" and answer["jobs_json"]
        assert answer["notifications"][0]["status"] == "pending" and answer["notifications"][0]["last_error"]
        smtp_down.start()  # the server comes back

        async def delivered() -> bool:
            return len(smtp_down.inbox.envelopes) == 1

        await eventually(delivered, timeout_s=15, what="mail after the outage")

        async def noted_sent() -> bool:  # the server has the mail a moment before the outbox notes it sent
            mails = (await api.client.get(detail, headers=READER)).json()["notifications"]
            return bool(mails[0]["status"] == "sent" and mails[0]["last_error"] is None)

        await eventually(noted_sent, what="mail noted as sent")
        message = parsed(smtp_down.inbox.envelopes[0].content)  # type: ignore[arg-type]
        stored = (await api.client.get(f"{detail}/jobs.json", headers=READER)).content
        assert next(message.iter_attachments()).get_payload(decode=True) == stored


async def test_mail_survives_a_restart(tmp_path: Path, couch_url: str, smtp_down: SmtpServer) -> None:
    settings = make_settings(tmp_path, couch_url, smtp_down.port)
    async with running(settings) as api:
        request_id = await approve(api)
    smtp_down.start()
    async with running(settings.model_copy(update={"events_db": settings.events_db + "-2"})) as api:

        async def delivered() -> bool:
            return len(smtp_down.inbox.envelopes) == 1

        await eventually(delivered, timeout_s=15, what="mail after the restart")
        assert smtp_down.inbox.envelopes[0].rcpt_tos == ["alice@snolab.example.org", SNOPLUS_LIST]
        assert (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["state"] == "approved"


async def test_giving_up_after_the_last_attempt(tmp_path: Path, couch_url: str, smtp_down: SmtpServer) -> None:
    settings = make_settings(tmp_path, couch_url, smtp_down.port).model_copy(update={"mail_max_attempts": 2})
    async with running(settings) as api:
        request_id = await approve(api)

        async def given_up() -> bool:
            mails = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
            return mails[0]["status"] == "failed"

        await eventually(given_up, what="mail given up")


async def test_mailing_list_from_settings(tmp_path: Path, couch_url: str, smtp: SmtpServer) -> None:
    settings = make_settings(tmp_path, couch_url, smtp.port).model_copy(
        update={"mailing_lists": {"snoplus": ["production@snoplus.example.org"]}}
    )
    async with running(settings) as api:
        await approve(api)

        async def delivered() -> bool:
            return len(smtp.inbox.envelopes) == 1

        await eventually(delivered, what="approval mail")
        assert smtp.inbox.envelopes[0].rcpt_tos == ["alice@snolab.example.org", "production@snoplus.example.org"]


async def test_without_smtp_host_mail_waits(tmp_path: Path, couch_url: str) -> None:
    async with running(make_settings(tmp_path, couch_url, None)) as api:
        request_id = await approve(api)

        async def noted() -> bool:
            mails = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
            return bool(mails[0]["last_error"])

        await eventually(noted, what="mail noted as waiting")
        mails = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
        assert mails[0]["status"] == "pending" and mails[0]["attempts"] == 0
        assert "SMTP_HOST" in mails[0]["last_error"]
