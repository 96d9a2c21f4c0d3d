"""A 10,000-job campaign, filed and approved through the gateway, while every process of the system is killed
with SIGKILL in turn and started again: submitter, monitor, request-api, gateway, the CouchDB server,
cycle-runner.

The system runs on Apache CouchDB 3.5 (the release in ``../shared/couchdb``), the server production sites use, so
its crash recovery is the one tested here; without the release, on PouchDB Server. The embedded PouchDB Server is
killed in the cycle fault test, and the counts fault test runs 10,000 jobs on it.

Afterwards: exactly 10,000 job documents, each completed at attempt 1 with its output registered; each job ran
once (every job appends its backend name to a ledger); the request is ``completed`` with one
``label.completed``; an SSE client that reconnected with ``Last-Event-ID`` after every break got every event
stored in that time exactly once.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults.fault_support import ResumingEventClient, admin_client, crash, event_ids, running_system, tolerant
from prodflow_cli.runner import EmbeddedSystem
from prodflow_core.couch.couchdb3 import couchdb3_dist
from system_support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]

LABEL = "2026-11_faults_10k"
MODULE = "FaultToy"
RUNS = list(range(300000, 300100))  # 100 runs x 100 chunks = 10,000 jobs
JOBS = 10_000
DATABASE = "data-production"
# (process, jobs run when it is killed); the submitter goes down while the campaign is being created.
CRASHES = [("monitor", 1500), ("request-api", 3000), ("gateway", 4500), ("couchdb", 6000), ("cycle-runner", 7500)]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with running_system(tmp_path_factory.mktemp("faults-campaign"), couch_release=couchdb3_dist()) as running:
        yield running


def _prepare(admin: httpx.Client, ledger: Path) -> None:
    command = f'echo "$PRODFLOW_JOB_NAME" >> {ledger} && echo {{events}} > {{module}}_r{{run}}_s{{chunk}}.dat'
    module = {
        "description": "fault-suite payload: records that it ran, writes one small output",
        "event_modes": ["run_by_run_events"],
        "kinds": ["production"],
        "command": command,
        "default_ev_per_run": 100,
    }
    assert admin.put(f"/api/catalog/snoplus/modules/{MODULE}", json=module).status_code in (200, 201)
    site = admin.get("/api/sites/local").json()
    spec = {k: site[k] for k in ("backend", "storage_element", "max_attempts", "queue_order")}
    # 1,000 jobs handed to the backend at a time, which runs 12 at once: a deep backend queue, many in flight.
    spec.update(max_running=1000, options={**site["options"], "max_running": 12})
    assert admin.put("/api/sites/local", json=spec).status_code == 200


def _file_and_approve(admin: httpx.Client) -> str:
    form = {
        "experiment": "snoplus",
        "title": "fault suite: 10,000 jobs",
        "kind": "production",
        "rat_v": "7.0.15",
        "modules": [{"module": MODULE, "n_ev": 10_000, "ev_per_run": 100, "run_numbers": RUNS}],
        "label": LABEL,
        "contacts": ["ops@snolab.example.org"],
        "justification": "fault suite",
    }
    filed = admin.post("/api/requests", json=form)
    assert filed.status_code == 201, filed.text
    request_id = str(filed.json()["id"])
    assert admin.post(f"/api/requests/{request_id}/submit").is_success
    approved = admin.post(f"/api/requests/{request_id}/approve", json={"note": "go"})
    assert approved.status_code == 200, approved.text
    return request_id


def _doc_count(couch_url: str) -> int:
    body = tolerant(lambda: httpx.get(f"{couch_url}/{DATABASE}", timeout=5).json())
    return int(body.get("doc_count", 0)) if isinstance(body, dict) else 0


def _ran(ledger: Path) -> int:
    """Jobs that have run so far (read from the ledger: the label summary can lag by seconds under this load)."""
    return ledger.read_bytes().count(b"\n") if ledger.exists() else 0


def _ran_past(ledger: Path, count: int) -> int | None:
    ran = _ran(ledger)
    return ran if ran >= count else None


def _job_docs(couch_url: str) -> list[dict[str, Any]]:
    rows = httpx.get(f"{couch_url}/{DATABASE}/_all_docs", params={"include_docs": "true"}, timeout=300).json()
    return [row["doc"] for row in rows["rows"] if row["doc"].get("type") == "job"]


def _output_records(system: EmbeddedSystem) -> dict[str, tuple[str, int]]:
    """The monitor's provenance records: output URL → (job id, attempt that wrote it)."""
    with contextlib.closing(sqlite3.connect(system.data_dir / "monitor.sqlite")) as db:
        return {
            url: (job, attempt) for url, job, attempt in db.execute("SELECT url, job_id, attempt FROM output_record")
        }


def test_campaign_survives_every_process_killed(system: EmbeddedSystem, tmp_path: Path) -> None:
    assert system.couch is not None
    couch_url = system.couch.url
    ledger = tmp_path / "ran.txt"
    client = ResumingEventClient(system.gateway_url, system.admin_token() or "")
    client.start()
    assert client.connected.wait(30), "the SSE client never connected"
    time.sleep(1.0)
    before = event_ids(couch_url)
    timeline: list[str] = []
    with admin_client(system, 60) as admin:
        _prepare(admin, ledger)
        request_id = _file_and_approve(admin)

        # The submitter dies while it writes the campaign (or, on a fast day, while it hands jobs out).
        created = wait_for(lambda: _doc_count(couch_url) or None, 120, "the first job documents", every_s=0.02)
        timeline.append(f"submitter killed at {created} job documents, away {crash(system, 'submitter'):.1f} s")
        for name, at in CRASHES:
            done = wait_for(partial(_ran_past, ledger, at), 600, f"{at} jobs run", every_s=0.1)
            timeline.append(f"{name} killed after {done} jobs ran, away {crash(system, name, down_s=2.0):.1f} s")

        def request_state() -> dict[str, Any] | None:
            body = tolerant(lambda: admin.get(f"/api/requests/{request_id}").json())
            state = body.get("state") if isinstance(body, dict) else None
            assert state not in {"failed", "cancelled"}, body
            return body if isinstance(body, dict) and state == "completed" else None

        request = wait_for(request_state, 600, "the request to complete")
        summary = admin.get(f"/api/labels/{LABEL}/summary", params={"verify": "true"}).json()
        campaigns = admin.get("/api/campaigns", params={"label": LABEL}).json()
        kept = [admin.get(f"/api/campaigns/{campaign['id']}").json()["counts"] for campaign in campaigns]

        def grab_manifest() -> dict[str, Any] | None:
            body = tolerant(lambda: admin.get(f"/api/grab/{LABEL}").json())
            return body if isinstance(body, dict) and "files" in body else None

        # The label's first grab builds the outputs index over 10,000 documents: on a busy machine the gateway may
        # answer 504 before the monitor does, and the client asks again.
        manifest = wait_for(grab_manifest, 300, "the grab manifest")
        some_output = manifest["files"][0]["url"] if manifest["files"] else ""
        traced = admin.get("/api/provenance", params={"url": some_output})
    time.sleep(3.0)  # the last events reach the client
    client.stop()
    print("\n".join(timeline))

    states = [h["state"] for h in request["history"]]
    assert states[-3:] == ["approved", "submitted-to-production", "completed"], states
    assert summary["jobs"] == JOBS and summary["counts"] == {"completed": JOBS}, summary
    assert summary["verification"]["consistent"], summary["verification"]  # kept counts = a full reduce
    assert kept == [{"completed": JOBS}], kept

    docs = _job_docs(couch_url)
    assert len(docs) == JOBS, "job documents lost or duplicated"
    assert len({(d["module"], d["run"], d["chunk"], d["pass"]) for d in docs}) == JOBS
    assert collections.Counter(d["status"] for d in docs) == {"completed": JOBS}
    assert collections.Counter(d["attempt"] for d in docs) == {1: JOBS}, "a job was retried"

    ran = collections.Counter(ledger.read_text().split())
    assert len(ran) == JOBS and set(ran.values()) == {1}, f"jobs run twice: {[n for n, c in ran.items() if c > 1][:5]}"
    assert {name.rsplit(":a", 1)[0] for name in ran} == {d["_id"] for d in docs}
    assert len(manifest.get("files", ())) == JOBS, f"outputs not registered: {str(manifest)[:500]}"
    # Each registered output has its provenance record (made before the job said completed), whatever was killed.
    assert _output_records(system) == {o["url"]: (d["_id"], d["attempt"]) for d in docs for o in d["outputs"]}
    assert traced.status_code == 200, traced.text
    assert traced.json()["job_output"]["request"]["id"] == request_id

    received = [e["id"] for e in client.events]
    assert len(received) == len(set(received)), "an event was delivered twice"
    missing = (event_ids(couch_url) - before) - set(received)
    assert not missing, f"{len(missing)} events never reached the reconnecting client"
    assert client.connections >= 2, "the gateway's crash did not break the stream"
    types = collections.Counter(e["type"].removeprefix("org.prodflow.") for e in client.events)
    assert types["label.completed"] == 1 and types["request.completed"] == 1, types
