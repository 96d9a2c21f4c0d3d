"""Fault test: the notifier (a real uvicorn process) killed with SIGKILL mid-batch, then started again.

Events keep coming while it is down. The receiver records every delivery: afterwards each event arrived, the
first arrivals are in the stream's order, and an event came twice only if it was in flight at the kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from notifier_support import ADMIN, SECRET, Receiver, events_db, wait_until
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.server import free_port
from prodflow_core.events import CloudEvent, EventPublisher, make_event

pytestmark = pytest.mark.integration


def _environment(couch_url: str, events: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PRODFLOW_COUCHDB_URL": couch_url,
        "PRODFLOW_EVENTS_DB": events,
        "PRODFLOW_DATA_DIR": str(data_dir),
        "PRODFLOW_IDENTITY_SECRET": SECRET,
        "PRODFLOW_LOG_JSON": "false",
        "NOTIFIER_PORT": str(port),
        "NOTIFIER_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
        "NOTIFIER_RETRY_BASE_S": "0.1",
        "NOTIFIER_RETRY_MAX_S": "0.5",
        "NOTIFIER_POLL_S": "0.5",
        "NOTIFIER_EVENTS_LONGPOLL_S": "1",
    }


@contextlib.contextmanager
def notifier_process(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``uvicorn prodflow_notifier.app:create_app --factory`` as a child, ready when /healthz answers 200."""
    port = env["NOTIFIER_PORT"]
    command = [sys.executable, "-m", "uvicorn", "prodflow_notifier.app:create_app", "--factory"]
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
            assert time.monotonic() < deadline, "the notifier did not start"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def test_sigkill_mid_batch_loses_nothing_and_repeats_only_the_one_in_flight(
    tmp_path: Path, couch_url: str
) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        publisher = EventPublisher(db, "/services/monitor")
        receiver = Receiver()
        env = _environment(couch_url, db.name, tmp_path, free_port())

        def event(n: int) -> CloudEvent:
            return make_event("job.completed", "/services/monitor", experiment="snoplus", data={"n": n})

        first = [event(n) for n in range(150)]
        second = [event(n) for n in range(150, 200)]
        with receiver.serving():
            with notifier_process(env, tmp_path / "notifier.log") as (proc, url):
                body = {"url": receiver.url, "event_types": ["org.prodflow.job.*"], "experiments": ["snoplus"]}
                async with httpx.AsyncClient(timeout=10) as client:
                    made = (await client.post(f"{url}/api/webhooks", json=body, headers=ADMIN)).json()
                receiver.secrets.append(made["secret"])
                await publisher.publish_many(first)
                await wait_until(lambda: len(receiver.ids()) >= 40, what="a part of the batch")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            killed_at = len(receiver.ids())
            assert killed_at < len(first), "the kill came too late to be mid-batch"
            await publisher.publish_many(second)
            with notifier_process(env, tmp_path / "notifier.log"):
                expected = [e.id for e in first + second]
                await wait_until(lambda: set(receiver.ids()) >= set(expected), timeout_s=30, what="every event")
        got = receiver.ids()
        assert list(dict.fromkeys(got)) == expected  # first arrivals in the stream's order
        repeated = [event_id for event_id, times in Counter(got).items() if times > 1]
        assert len(repeated) <= 1, repeated  # at most the delivery in flight at the kill
        assert all(r.verified for r in receiver.got)
        await db.drop()
