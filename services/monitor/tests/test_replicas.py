"""Two monitor replicas on the same databases split the labels between them and never handle a job twice."""

from __future__ import annotations

import contextlib
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
from prodflow_monitor.sharding import replica_of
from prodflow_monitor.views import label_status_counts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_two_replicas_share_the_work_without_double_handling(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    labels = [f"2026-11_Split_{i}" for i in range(8)]
    assert {replica_of(label, 2) for label in labels} == {0, 1}  # both replicas get work
    site = kit.local_site("local-split", tmp_path / "work", tmp_path / "outputs", f"file://{tmp_path / 'se'}")
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    db = couch.db(monitor_settings.databases[0])
    replicas = [monitor_settings.model_copy(update={"replicas": 2, "replica_index": i}) for i in (0, 1)]
    apps = [create_app(settings) for settings in replicas]
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(serving(app)) for app in apps]
        docs = [kit.job_doc(label, "Mod", run, site["name"]) for label in labels for run in range(1, 16)]
        await db.bulk_docs(docs)
        await kit.submit_jobs(db, backend, docs, tmp_path / "outputs", lambda d: "echo x > out.root")

        async def all_done() -> bool:
            counts = [await label_status_counts(db, label) for label in labels]
            return all(c == {"completed": 15} for c in counts)

        await kit.wait_until(all_done, 60, "every label to complete", every_s=0.5)

        async def all_announced() -> bool:
            rows = (await couch.db(monitor_settings.events_db).all_docs(include_docs=True)).rows
            done = [r["doc"] for r in rows if r["doc"].get("type") == "org.prodflow.label.completed"]
            return len(done) >= len(labels)

        await kit.wait_until(all_announced, 20, "label.completed of every label")
        # A label's counts belong to its replica, and any replica answers for every label.
        header = {IDENTITY_HEADER: sign_identity(Identity("r", frozenset({"*"}), frozenset({"reader"})),
                                                 monitor_settings.identity_secret, 600)}  # fmt: skip
        for url in urls:
            async with httpx.AsyncClient(base_url=url, headers=header) as client:
                for label in labels:
                    summary = (await client.get(f"/api/labels/{label}/summary")).json()
                    assert summary["counts"] == {"completed": 15}, (url, label, summary)
        sample = {"database": db.name, "status": "completed"}
        moved = [
            app.state.metrics.registry.get_sample_value("prodflow_monitor_transitions_total", sample) for app in apps
        ]
    assert all(m for m in moved) and sum(m or 0 for m in moved) == len(docs)  # each replica completed its own share
    for doc in await kit.all_docs(db, "job:"):
        assert Counter(h["status"] for h in doc["history"])["completed"] == 1
    rows = (await couch.db(monitor_settings.events_db).all_docs(include_docs=True)).rows
    completed = Counter(
        r["doc"]["data"]["label"] for r in rows if r["doc"].get("type") == "org.prodflow.label.completed"
    )
    assert completed == dict.fromkeys(labels, 1)
