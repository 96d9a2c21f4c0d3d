"""Fault test: the monitor process is killed with SIGKILL while 1,000 jobs run, then started again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prodflow_core.backends import make_backend
from prodflow_core.couch import CouchClient
from prodflow_core.couch.server import free_port
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.views import label_status_counts

pytestmark = pytest.mark.integration

N_JOBS = 1000
WAVE = 250
COMMAND = "sleep 0.6; printf 'events of %s\\n' \"$PRODFLOW_JOB_NAME\" > out.root"


def _environment(settings: MonitorSettings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PRODFLOW_COUCHDB_URL": settings.couchdb_url,
        "PRODFLOW_EVENTS_DB": settings.events_db,
        "PRODFLOW_DATA_DIR": str(settings.data_dir),
        "PRODFLOW_LOG_JSON": "false",
        "MONITOR_DATABASES": json.dumps(list(settings.databases)),
        "MONITOR_SUBMITTER_URL": settings.submitter_url,
        "MONITOR_CYCLE_S": "0.5",
        "MONITOR_CHANGES_LONGPOLL_S": "2",
        "MONITOR_LOST_GRACE_S": "30",
        "MONITOR_PORT": str(port),
    }


@contextlib.contextmanager
def monitor_process(settings: MonitorSettings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``uvicorn prodflow_monitor.app:create_app --factory`` as a child process, ready when /healthz answers."""
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "prodflow_monitor.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=_environment(settings, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "monitor did not start"
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.timeout(170)
async def test_kill_9_while_jobs_run_then_restart_every_job_ends_right_once(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    settings, label = monitor_settings, "2026-11_Tl208_fault"
    site = kit.local_site(
        "local-fault", tmp_path / "work", tmp_path / "outputs", f"file://{tmp_path / 'se'}", max_running=48
    )
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    db = couch.db(settings.databases[1])  # the processing database this time
    log = tmp_path / "monitor.log"

    async def completed() -> int:
        return (await label_status_counts(db, label)).get("completed", 0)

    with monitor_process(settings, log) as first:
        docs = [kit.job_doc(label, f"Mod{i % 2}", 1 + i // 2, site["name"]) for i in range(N_JOBS)]
        await db.bulk_docs(docs)

        async def submit_in_waves() -> None:  # as submitter's site loop does, a wave at a time
            for start in range(0, N_JOBS, WAVE):
                await kit.submit_jobs(db, backend, docs[start : start + WAVE], tmp_path / "outputs", lambda d: COMMAND)
                await asyncio.sleep(0.2)

        submitting = asyncio.create_task(submit_in_waves())

        async def some_done() -> bool:  # read without a view: an index build here let every job end first
            return any(doc["status"] == "completed" for doc in await kit.all_docs(db, f"job:{label}:"))

        await kit.wait_until(some_done, 90, "the first completed jobs", every_s=0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    done_at_kill = await completed()
    assert done_at_kill < N_JOBS, "every job finished before the kill: the test proves nothing"
    await asyncio.sleep(1.0)  # jobs go on at the backend, and are submitted, while no monitor runs

    with monitor_process(settings, log):

        async def all_done() -> bool:
            return await completed() == N_JOBS

        await kit.wait_until(all_done, 120, f"{N_JOBS} completed jobs after the restart", every_s=1.0)
        await submitting

        async def label_completed() -> list[dict[str, Any]]:
            rows = (await couch.db(settings.events_db).all_docs(include_docs=True)).rows
            return [r["doc"] for r in rows if r["id"].startswith("evt-")]

        async def label_announced() -> bool:
            return any(e["type"] == "org.prodflow.label.completed" for e in await label_completed())

        await kit.wait_until(label_announced, 20, "label.completed")
        await asyncio.sleep(1.0)  # anything emitted twice would show up now
        events = await label_completed()

    stored = await kit.all_docs(db, f"job:{label}:")
    assert len(stored) == N_JOBS
    for doc in stored:
        statuses = Counter(h["status"] for h in doc["history"])
        assert doc["status"] == "completed" and doc["attempt"] == 1, doc["_id"]
        assert statuses["transferring"] == statuses["completed"] == 1 and statuses["running"] <= 1, doc["history"]
        assert len(doc["outputs"]) == 1 and doc["outputs"][0]["size"] > 0
    assert [e["data"]["counts"] for e in events if e["type"] == "org.prodflow.label.completed"] == [
        {"completed": N_JOBS}
    ]
    announced = {j for e in events if e["type"] == "org.prodflow.job.completed" for j in e["data"]["job_ids"]}
    assert announced == {doc["_id"] for doc in stored}
