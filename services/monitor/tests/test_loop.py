"""End to end: real CouchDB-API server, real ``local`` backend, the monitor app serving and looping."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from prodflow_core.backends import make_backend
from prodflow_core.couch import CouchClient
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.testing import serving
from prodflow_monitor.app import create_app
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.storage import adler32_hex

pytestmark = pytest.mark.integration

N_JOBS = 1000
COMMAND = "printf 'events of %s\\n' \"$PRODFLOW_JOB_NAME\" > out.root"


def reader_header(secret: str, experiments: frozenset[str] = frozenset({"snoplus"})) -> dict[str, str]:
    identity = Identity(user="alice", experiments=experiments, roles=frozenset({"reader"}))
    return {IDENTITY_HEADER: sign_identity(identity, secret, ttl_s=86_400)}


def expected_output(doc: dict[str, Any]) -> bytes:
    return f"events of {doc['_id']}:a{doc['attempt']}\n".encode()


def check_completed_once_with_outputs(docs: list[dict[str, Any]]) -> None:
    """Every job completed once, at its first attempt, its output on the SE with the recorded size and adler32."""
    for doc in docs:
        assert doc["status"] == "completed" and doc["attempt"] == 1, doc["_id"]
        statuses = [h["status"] for h in doc["history"]]
        assert Counter(statuses)["completed"] == 1 and statuses[-2:] == ["transferring", "completed"], statuses
        (output,) = doc["outputs"]
        data = Path(output["url"].removeprefix("file://")).read_bytes()
        assert data == expected_output(doc)
        assert output["size"] == len(data) and output["adler32"] == adler32_hex(zlib.adler32(data))


def through_gateway(settings: MonitorSettings, monitor_url: str, label: str) -> dict[str, Any]:
    """The label's summary through the gateway, and its ``label.completed`` from the gateway's SSE stream."""
    from prodflow_gateway.app import create_app as create_gateway
    from prodflow_gateway.settings import GatewaySettings

    token = "pf_monitor-test-admin"
    gateway = GatewaySettings(
        couchdb_url=settings.couchdb_url,
        data_dir=settings.data_dir / "gateway",
        log_json=False,
        events_db=settings.events_db,
        bootstrap_token=token,
        monitor_url=monitor_url,
        sse_heartbeat_s=0.5,
    )
    auth = {"Authorization": f"Bearer {token}"}
    with serving(create_gateway(gateway)) as url, httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        summary = client.get(f"/api/labels/{label}/summary").json()
        params = {"since": "0", "types": "label.completed", "limit": "1"}
        with client.stream("GET", "/api/events", params=params) as stream:
            data = [line.removeprefix("data: ") for line in stream.iter_lines() if line.startswith("data: ")]
    return {"summary": summary, "event": json.loads(data[0])}


async def events_of(couch: CouchClient, settings: MonitorSettings) -> list[dict[str, Any]]:
    rows = (await couch.db(settings.events_db).all_docs(include_docs=True)).rows
    return [row["doc"] for row in rows if row["id"].startswith("evt-")]


@pytest.mark.timeout(150)
async def test_thousand_jobs_complete_with_outputs_on_the_se_and_one_label_completed(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    settings, label = monitor_settings, "2026-11_Bi214_e2e"
    site = kit.local_site(
        "local-e2e", tmp_path / "work", tmp_path / "outputs", f"file://{tmp_path / 'se'}", max_running=48
    )
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    with serving(create_app(settings)) as url:
        db = couch.db(settings.databases[0])
        docs = [kit.job_doc(label, f"Mod{i % 4}", 1 + i // 4, site["name"], events=100) for i in range(N_JOBS)]
        await db.bulk_docs(docs)
        await kit.submit_jobs(db, backend, docs, tmp_path / "outputs", lambda d: COMMAND)
        headers = reader_header(settings.identity_secret)

        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

            async def all_completed() -> bool:
                summary = (await http.get(f"/api/labels/{label}/summary")).json()
                return bool(summary.get("counts") == {"completed": N_JOBS})

            await kit.wait_until(all_completed, 120, f"{N_JOBS} completed jobs", every_s=1.0)
            summary = (await http.get(f"/api/labels/{label}/summary")).json()
            assert summary["complete"] is True and summary["jobs"] == N_JOBS
            assert summary["events_requested"] == summary["events_done"] == 100 * N_JOBS
            assert summary["modules"]["Mod0"]["counts"] == {"completed": N_JOBS // 4}

            async def label_completed_seen() -> bool:
                return any(e["type"] == "org.prodflow.label.completed" for e in await events_of(couch, settings))

            await kit.wait_until(label_completed_seen, 20, "label.completed")
            metrics = (await http.get("/metrics")).text
            assert f'prodflow_jobs{{database="{db.name}",status="completed"}} {float(N_JOBS)}' in metrics
            seen_on_gateway = await asyncio.to_thread(through_gateway, settings, url, label)
    assert seen_on_gateway["summary"]["counts"] == {"completed": N_JOBS}
    assert seen_on_gateway["event"]["data"] == {"label": label, "database": db.name, "counts": {"completed": N_JOBS}}

    stored = await kit.all_docs(db, f"job:{label}:")
    assert len(stored) == N_JOBS
    check_completed_once_with_outputs(stored)

    events = await events_of(couch, settings)
    completed = [e for e in events if e["type"] == "org.prodflow.label.completed"]
    assert len(completed) == 1
    assert completed[0]["data"] == {"label": label, "database": db.name, "counts": {"completed": N_JOBS}}
    announced = Counter(j for e in events if e["type"] == "org.prodflow.job.completed" for j in e["data"]["job_ids"])
    assert set(announced) == {d["_id"] for d in stored} and max(announced.values()) == 1
    registered = [o for e in events if e["type"] == "org.prodflow.output.registered" for o in e["data"]["outputs"]]
    assert len(registered) == N_JOBS
    assert len([e for e in events if e["type"] == "org.prodflow.job.completed"]) < N_JOBS / 10  # bulk events
    assert sites_api.callers == {"service:monitor"}
