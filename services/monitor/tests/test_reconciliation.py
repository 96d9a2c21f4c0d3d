"""Reconciliation with the real local backend: failures, retries per site policy, lost jobs, failed transfers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prodflow_core.backends import make_backend
from prodflow_core.couch import CouchClient
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import SUBMITTED, transition
from prodflow_core.testing import serving
from prodflow_monitor.app import create_app
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.views import label_status_counts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

OK = "echo fine > out.root"


async def test_failures_retries_and_lost_jobs_follow_the_site_policy(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    label = "2026-11_Retry_v1"
    site = kit.local_site("local-retry", tmp_path / "work", tmp_path / "outputs", f"file://{tmp_path / 'se'}")
    sites_api.sites[site["name"]] = site  # max_attempts 3, retry_exit_codes [137, 143]
    backend = make_backend("local", site["options"])
    settings = monitor_settings.model_copy(update={"lost_grace_s": 0.0})
    db = couch.db(settings.databases[0])
    retried = [kit.job_doc(label, "Retry", r, site["name"]) for r in (1, 2)]
    broken = kit.job_doc(label, "Broken", 1, site["name"])
    lost = kit.job_doc(label, "Lost", 1, site["name"])
    own_policy = kit.job_doc(label, "OwnPolicy", 1, site["name"])
    own_policy["policy"] = {"max_attempts": 1, "retry_exit_codes": [137]}  # submitter's per-job policy wins
    with serving(create_app(settings)):
        await db.bulk_docs([*retried, broken, lost, own_policy])
        await kit.submit_jobs(db, backend, [*retried, own_policy], tmp_path / "outputs", lambda d: "exit 137")
        await kit.submit_jobs(db, backend, [broken], tmp_path / "outputs", lambda d: "exit 2")
        fresh = await db.get(lost["_id"])  # submitted, but the backend never heard of it
        moved = transition(fresh, SUBMITTED, utc_now())
        moved["backend"] = {"name": "local", "id": "never-submitted", "state": "PENDING"}
        await db.put(moved)

        async def settled() -> bool:
            counts = await label_status_counts(db, label)
            return counts == {"waiting": 3, "failed": 2}

        await kit.wait_until(settled, 40, "retries to be waiting and failures to be failed")
        docs = {d["_id"]: d for d in await kit.all_docs(db, f"job:{label}:")}
        for doc in retried:
            again = docs[doc["_id"]]
            assert again["attempt"] == 2 and again["backend"] is None
            assert [h["status"] for h in again["history"]][-3:] == ["submitted", "failed", "waiting"]
            assert "exit code 137" in again["history"][-1]["reason"]
        assert (
            docs[broken["_id"]]["status"] == "failed" and "exit code 2" in docs[broken["_id"]]["history"][-1]["reason"]
        )
        assert docs[own_policy["_id"]]["status"] == "failed"  # one attempt only, by its own policy
        assert docs[lost["_id"]]["attempt"] == 2 and "lost by the backend" in docs[lost["_id"]]["history"][-1]["reason"]

        # submitter sends the waiting jobs again; this time they succeed
        waiting = [docs[d["_id"]] for d in (*retried, lost)]
        await kit.submit_jobs(db, backend, waiting, tmp_path / "outputs", lambda d: OK)

        async def finished() -> bool:
            return await label_status_counts(db, label) == {"completed": 3, "failed": 2}

        await kit.wait_until(finished, 40, "the retried jobs to complete")

        async def events() -> list[dict[str, Any]]:
            rows = (await couch.db(settings.events_db).all_docs(include_docs=True)).rows
            return [r["doc"] for r in rows if r["id"].startswith("evt-")]

        async def completed_announced() -> bool:
            return any(e["type"] == "org.prodflow.label.completed" for e in await events())

        await kit.wait_until(completed_announced, 20, "label.completed")
    by_type: dict[str, set[str]] = {}
    for event in await events():
        by_type.setdefault(event["type"].removeprefix("org.prodflow."), set()).update(event["data"].get("job_ids", []))
    assert by_type["job.retried"] == {d["_id"] for d in (*retried, lost)}
    assert by_type["job.failed"] >= {broken["_id"], own_policy["_id"]}
    label_events = [e for e in await events() if e["type"] == "org.prodflow.label.completed"]
    assert [e["data"]["counts"] for e in label_events] == [{"completed": 3, "failed": 2}]
    completed = await db.get(retried[0]["_id"])
    assert completed["attempt"] == 2 and completed["outputs"][0]["url"].endswith("/Retry/1_0_p1/out.root")


async def test_failed_transfers_retry_and_never_complete_the_job(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    label = "2026-11_BadSE_v1"
    (tmp_path / "not-a-folder").write_text("a file where the storage element should be")
    site = kit.local_site(
        "local-bad-se", tmp_path / "work", tmp_path / "outputs", f"file://{tmp_path / 'not-a-folder'}", max_attempts=2
    )
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    settings = monitor_settings.model_copy(update={"transfer_attempts": 3, "transfer_backoff_s": 0.1})
    db = couch.db(settings.databases[0])
    doc = kit.job_doc(label, "Mod", 1, site["name"])
    with serving(create_app(settings)):
        await db.bulk_docs([doc])
        await kit.submit_jobs(db, backend, [doc], tmp_path / "outputs", lambda d: OK)

        async def retried() -> bool:
            return (await db.get(doc["_id"]))["status"] == "waiting"

        await kit.wait_until(retried, 40, "the job to be retried after its transfers failed")
    stored = await db.get(doc["_id"])
    statuses = [h["status"] for h in stored["history"]]
    assert "completed" not in statuses and statuses[-3:] == ["transferring", "partFail", "waiting"]
    assert (
        stored["attempt"] == 2
        and stored["outputs"] == []
        and "not transferred after 3 tries" in stored["history"][-2]["reason"]
    )
