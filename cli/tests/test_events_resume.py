"""``prodflow events`` survives a dropped stream: it reconnects with Last-Event-ID and misses nothing."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cli_support import ADMIN_TOKEN
from prodflow_cli.client import Gateway
from prodflow_cli.config import Config
from prodflow_cli.sse import Message, follow
from prodflow_core.events import make_event
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app
from prodflow_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration


def _publish(couch_url: str, db: str, subject: str) -> None:
    event = make_event("job.completed", "/tests/cli", subject=subject, experiment="snoplus")
    assert httpx.put(f"{couch_url}/{db}/{event.id}", json=event.document(), timeout=10).status_code in (201, 202)


def _wait_for(messages: list[Message], count: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(messages) < count:
        assert time.monotonic() < deadline, f"got {len(messages)} of {count} events"
        time.sleep(0.05)


def test_follow_resumes_after_a_drop_without_missing_or_repeating(couch_url: str, tmp_path: Path) -> None:
    events_db = f"events-{uuid.uuid4().hex[:8]}"
    assert httpx.put(f"{couch_url}/{events_db}", timeout=10).status_code in (201, 412)
    settings = GatewaySettings(
        couchdb_url=couch_url,
        data_dir=tmp_path,
        log_json=False,
        events_db=events_db,
        bootstrap_token=ADMIN_TOKEN,
        sse_heartbeat_s=30,  # silence on the wire: the client's read timeout below drops the connection
    )
    messages: list[Message] = []
    retries: list[str] = []
    with serving(create_app(settings)) as url:
        client = Gateway(Config(url=url, token=ADMIN_TOKEN))

        def consume() -> None:
            stream = follow(client, since="0", limit=4, read_s=0.5, retry_s=0.2, on_retry=retries.append)
            messages.extend(stream)

        _publish(couch_url, events_db, "s0")
        _publish(couch_url, events_db, "s1")
        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        _wait_for(messages, 2)
        deadline = time.monotonic() + 10
        while not retries:  # the quiet stream was dropped and is being resumed
            assert time.monotonic() < deadline, "the follower never reconnected"
            time.sleep(0.05)
        _publish(couch_url, events_db, "s2")
        _publish(couch_url, events_db, "s3")
        reader.join(20)
        client.close()
    assert not reader.is_alive()
    assert [m.cloud_event()["subject"] for m in messages] == ["s0", "s1", "s2", "s3"]
    assert "resuming after" in retries[0] and messages[1].id in retries[0]
