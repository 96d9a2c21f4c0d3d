"""Fault test: request-api killed (SIGKILL) after committing an outcome mail it could not send yet, then restarted.

The request's move to ``failed`` and its mail commit together; the kill comes while SMTP is down, so the mail is
in the outbox only. After the restart, with SMTP back, each mail goes out once, even though the follower may see
the ``label.completed`` event again and the monitor announces it once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prodflow_core.couch import CouchClient
from prodflow_core.couch.server import free_port
from prodflow_core.events import EventPublisher, make_event
from request_api_support import ALICE, MANAGER, READER, SECRET, SmtpServer, form, parsed, subject

pytestmark = pytest.mark.integration

LABEL = "2026-11_WaterBi214_v1"


def _environment(couch_url: str, events_db: str, data_dir: Path, smtp_port: int, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PRODFLOW_COUCHDB_URL": couch_url,
        "PRODFLOW_EVENTS_DB": events_db,
        "PRODFLOW_DATA_DIR": str(data_dir),
        "PRODFLOW_IDENTITY_SECRET": SECRET,
        "PRODFLOW_LOG_JSON": "false",
        "REQUEST_API_PORT": str(port),
        "REQUEST_API_SMTP_HOST": "127.0.0.1",
        "REQUEST_API_SMTP_PORT": str(smtp_port),
        "REQUEST_API_SMTP_FROM": "prodflow@snolab.example.org",
        "REQUEST_API_SMTP_TIMEOUT_S": "2",
        "REQUEST_API_MAIL_RETRY_S": "0.2",
        "REQUEST_API_MAIL_RETRY_MAX_S": "0.5",
        "REQUEST_API_OUTBOX_POLL_S": "0.1",
        "REQUEST_API_EVENTS_LONGPOLL_S": "0.5",
    }


@contextlib.contextmanager
def request_api_process(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``uvicorn prodflow_request_api.app:create_app --factory`` as a child process, ready when /healthz answers."""
    port = env["REQUEST_API_PORT"]
    command = [sys.executable, "-m", "uvicorn", "prodflow_request_api.app:create_app", "--factory"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", port, "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "request-api did not start"
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(180)  # two service starts: 10 s alone, 33 s seen in a loaded CI run
async def test_killed_between_commit_and_send(tmp_path: Path, couch_url: str, smtp_down: SmtpServer) -> None:
    events_db = f"events-{uuid.uuid4().hex[:10]}"
    env = _environment(couch_url, events_db, tmp_path, smtp_down.port, free_port())
    log = tmp_path / "request-api.log"
    async with CouchClient(couch_url) as couch:
        publisher = EventPublisher(couch.db(events_db), "/services/monitor")

        async def announce(short_type: str, data: dict[str, object]) -> None:
            await publisher.publish(
                make_event(short_type, publisher.source, subject=LABEL, experiment="snoplus", data=data)
            )

        ended = {"label": LABEL, "database": "data-production", "counts": {"completed": 3000, "failed": 399}}
        with request_api_process(env, log) as (first, url):
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                request_id = (await client.post("/api/requests", json=form(), headers=ALICE)).json()["id"]
                await client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
                assert (await client.post(f"/api/requests/{request_id}/approve", headers=MANAGER)).is_success
                await announce("campaign.created", {"request_id": request_id, "label": LABEL, "jobs": 3399})
                await announce("label.completed", ended)

                async def committed_not_sent() -> bool:
                    body = (await client.get(f"/api/requests/{request_id}", headers=READER)).json()
                    mails = body["notifications"]
                    return body["state"] == "failed" and len(mails) == 2 and all(m["last_error"] for m in mails)

                await _until(committed_not_sent, 20, "the outcome committed, its mail not sent")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        smtp_down.start()
        with request_api_process(env, log) as (_second, url):
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:

                async def both_sent() -> bool:
                    mails = (await client.get(f"/api/requests/{request_id}", headers=READER)).json()["notifications"]
                    return [m["status"] for m in mails] == ["sent", "sent"]

                await _until(both_sent, 20, "both mails sent after the restart")
                await announce("label.completed", ended)  # the monitor announces the outcome once more
                await asyncio.sleep(1.5)
                subjects = sorted(subject(parsed(e)) for e in smtp_down.inbox.envelopes)
                assert subjects == [
                    f"[prodflow] snoplus request {request_id} approved: {LABEL}",
                    f"[prodflow] snoplus request {request_id} failed: {LABEL}",
                ]
        await couch.db(events_db).drop()
