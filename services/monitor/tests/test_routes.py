"""The status API, summaries, grabber and metrics over a real CouchDB-API server (loop not running)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prodflow_core.couch import CouchClient
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.sql import make_engine
from prodflow_core.testing import serving
from prodflow_core.testing_sql import reads_of
from prodflow_monitor.app import create_app
from prodflow_monitor.settings import MonitorSettings
from sqlalchemy import text

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LABEL = "2026-11_Routes_v1"


def _header(
    settings: MonitorSettings, experiments: set[str], roles: set[str] = frozenset({"reader"})
) -> dict[str, str]:  # type: ignore[assignment]
    identity = Identity(user="carol", experiments=frozenset(experiments), roles=frozenset(roles))
    return {IDENTITY_HEADER: sign_identity(identity, settings.identity_secret, ttl_s=86_400)}


@pytest.fixture
def api_settings(monitor_settings: MonitorSettings) -> MonitorSettings:
    return monitor_settings.model_copy(update={"run_loop": False})


@pytest.fixture
def app(api_settings: MonitorSettings) -> FastAPI:
    return create_app(api_settings)


@pytest.fixture
def app_url(app: FastAPI) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
async def seeded(couch: CouchClient, api_settings: MonitorSettings, app_url: str, kit: Any) -> dict[str, Any]:
    """Jobs of two labels and two experiments in both databases, in several statuses, some with outputs."""
    production, processing = (couch.db(name) for name in api_settings.databases)
    docs = []
    for i in range(30):
        doc = kit.job_doc(LABEL, "ModA" if i < 20 else "ModB", 100 + i, "site-a" if i % 2 else "site-b", events=10)
        doc["status"] = "completed" if i < 18 else ("running" if i < 25 else "failed")
        if doc["status"] == "completed":
            doc["outputs"] = [
                {"name": "x.root", "url": f"file:///se/{i}/x.root", "size": 100 + i, "adler32": f"{i:08x}"}
            ]
        docs.append(doc)
    await production.bulk_docs(docs)
    legend = [kit.job_doc("L200_Cycle_p03", "tier_dsp", r, "site-a", experiment="legend") for r in range(5)]
    await processing.bulk_docs(legend)

    async def counted() -> bool:  # the kept counts follow the feed: wait until they hold every seeded job
        async with httpx.AsyncClient(base_url=app_url, headers=_header(api_settings, {"*"})) as client:
            labels = (await client.get("/api/labels")).json()["items"]
        return sum(item["jobs"] for item in labels) == len(docs) + len(legend)

    await kit.wait_until(counted, 30, "the kept counts of the seeded jobs", every_s=0.05)
    return {"docs": docs}


async def _client(url: str, headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
async def http(app_url: str, api_settings: MonitorSettings, seeded: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(app_url, _header(api_settings, {"snoplus"})):
        yield client


async def test_list_jobs_filters_and_pages_by_view_key(http: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"label": LABEL, "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/api/jobs", params=params)).json()
        seen += [job["_id"] for job in page["items"]]
        assert all("history" not in job for job in page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 30
    by_status = (await http.get("/api/jobs", params={"label": LABEL, "status": "running"})).json()
    assert by_status["count"] == 7 and {j["status"] for j in by_status["items"]} == {"running"}
    narrow = (await http.get("/api/jobs", params={"label": LABEL, "module": "ModB", "run": 125, "pass": 1})).json()
    assert [j["_id"] for j in narrow["items"]] == [f"job:{LABEL}:ModB:125:0:p1"]
    by_site = (await http.get("/api/jobs", params={"site": "site-a", "status": "failed", "limit": 2})).json()
    assert by_site["count"] == 2 and by_site["next"] and all(j["site"] == "site-a" for j in by_site["items"])
    everything = (await http.get("/api/jobs", params={"limit": 1000})).json()
    assert everything["count"] == 30  # the legend jobs are not visible to a snoplus reader


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def test_listings_for_a_token_read_only_its_experiments_keys(
    app: FastAPI, app_url: str, api_settings: MonitorSettings, seeded: dict[str, Any]
) -> None:
    async with reads_of(app.state.counts_engine, "counted_job") as reads:
        async for legend in _client(app_url, _header(api_settings, {"legend"})):
            other = (await legend.get("/api/jobs", params={"label": LABEL})).json()
            assert other == {"items": [], "count": 0, "next": None}  # a snoplus label: nothing read, no cursor
            assert reads.seen == []  # not one ledger row looked at
            seen, cursor = [], None
            while True:
                params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
                page = (await legend.get("/api/jobs", params=params)).json()
                seen += [job["_id"] for job in page["items"]]
                cursor = page["next"]
                if cursor is None:
                    break
                assert not any(part.encode() in _raw(cursor) for part in ("L200", "tier_dsp", "legend", "job:"))
            assert len(seen) == len(set(seen)) == 5
    assert reads.seen and all("legend" in p and "snoplus" not in p for p in reads.parameters)
    for plan in await reads.plans():  # each page entered at the caller's experiment on a listing index
        assert "ix_counted_job_experiment_" in plan and "(database=? AND experiment=?" in plan, plan


async def test_a_summary_reads_only_its_labels_counts(app: FastAPI, http: httpx.AsyncClient) -> None:
    """From the label index: a scan of every label's rows grew with the number of labels (3.5 ms at 2,000)."""
    async with reads_of(app.state.counts_engine, "label_count") as reads:
        summary = (await http.get(f"/api/labels/{LABEL}/summary")).json()
    assert summary["jobs"] == 30 and reads.seen
    for plan in await reads.plans():
        assert "SCAN" not in plan and "(label=?" in plan, plan


async def test_a_cursor_is_good_only_for_its_query_and_caller(
    http: httpx.AsyncClient, app_url: str, api_settings: MonitorSettings
) -> None:
    first = (await http.get("/api/jobs", params={"label": LABEL, "limit": 3})).json()
    cursor = first["next"]
    assert cursor and not any(job["_id"].encode() in _raw(cursor) for job in first["items"])
    again = (await http.get("/api/jobs", params={"label": LABEL, "limit": 3, "cursor": cursor})).json()
    assert again["count"] == 3 and not {j["_id"] for j in again["items"]} & {j["_id"] for j in first["items"]}
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for params in (
        {"label": LABEL, "cursor": tampered},
        {"label": LABEL, "status": "running", "cursor": cursor},  # another query
        {"cursor": cursor},
        {"label": LABEL, "cursor": "garbage"},
    ):
        refused = await http.get("/api/jobs", params=params)
        assert refused.status_code == 400, params
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"][0]["field"] == "query.cursor"
    async for other in _client(app_url, _header(api_settings, {"snoplus", "legend"})):  # another identity
        assert (await other.get("/api/jobs", params={"label": LABEL, "cursor": cursor})).status_code == 400
    assert (await http.get("/api/jobs", params={"label": LABEL, "limit": 50, "cursor": cursor})).status_code == 200


async def test_job_detail_has_history_and_problems_are_problem_json(http: httpx.AsyncClient) -> None:
    job = (await http.get(f"/api/jobs/job:{LABEL}:ModA:100:0:p1")).json()
    assert job["history"][0]["status"] == "waiting" and job["database"].startswith("data-production")
    missing = await http.get("/api/jobs/job:nope:M:1:0:p1")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = await http.get("/api/jobs", params={"status": "exploded"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.status"
    assert (await http.get("/api/jobs", params={"cursor": "garbage"})).status_code == 400
    forbidden = await http.get("/api/jobs/job:L200_Cycle_p03:tier_dsp:0:0:p1")
    assert forbidden.status_code == 403
    assert (await http.get("/api/labels/L200_Cycle_p03/summary")).status_code == 403


async def test_unauthenticated_calls_are_refused(app_url: str, seeded: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=app_url) as anonymous:
        assert (await anonymous.get("/api/jobs")).status_code == 401
        assert (await anonymous.get(f"/api/grab/{LABEL}")).status_code == 401


async def test_labels_and_summary_from_kept_counts(http: httpx.AsyncClient) -> None:
    labels = (await http.get("/api/labels")).json()["items"]
    assert [(item["label"], item["experiment"]) for item in labels] == [(LABEL, "snoplus")]
    assert labels[0]["counts"] == {"completed": 18, "failed": 5, "running": 7} and labels[0]["complete"] is False
    summary = (await http.get(f"/api/labels/{LABEL}/summary")).json()
    assert summary["experiment"] == "snoplus" and summary["jobs"] == 30 and summary["final"] == 23
    assert summary["events_requested"] == 300 and summary["events_done"] == 180
    assert summary["modules"]["ModB"] == {
        "counts": {"failed": 5, "running": 5},
        "jobs": 10,
        "events_requested": 100,
        "events_done": 0,
    }
    assert (await http.get("/api/labels/unknown_label/summary")).status_code == 404
    verify = await http.get(f"/api/labels/{LABEL}/summary", params={"verify": "true"})
    assert verify.status_code == 403 and verify.headers["content-type"] == "application/problem+json"


async def test_labels_come_a_page_at_a_time_with_a_cursor_for_this_query_only(
    app_url: str, api_settings: MonitorSettings, seeded: dict[str, Any]
) -> None:
    async for admin in _client(app_url, _header(api_settings, {"*"}, {"admin"})):
        whole = (await admin.get("/api/labels")).json()
        assert {item["label"] for item in whole["items"]} == {LABEL, "L200_Cycle_p03"} and whole["next"] is None
        first = (await admin.get("/api/labels", params={"limit": 1})).json()
        rest = (await admin.get("/api/labels", params={"limit": 1, "cursor": first["next"]})).json()
        assert first["items"] + rest["items"] == whole["items"] and rest["next"] is None
        other_query = await admin.get("/api/labels", params={"experiment": "snoplus", "cursor": first["next"]})
        assert other_query.status_code == 400 and other_query.json()["type"].endswith("/bad-cursor")
        assert (await admin.get("/api/labels", params={"limit": 0})).status_code == 422


async def test_verify_compares_kept_counts_with_a_full_reduce(
    app_url: str, api_settings: MonitorSettings, seeded: dict[str, Any]
) -> None:
    async for admin in _client(app_url, _header(api_settings, {"*"}, {"admin"})):
        summary = (await admin.get(f"/api/labels/{LABEL}/summary", params={"verify": "true"})).json()
        assert summary["jobs"] == 30
        assert summary["verification"]["consistent"] is True
        assert set(summary["verification"]["differences"]) == set(api_settings.databases)
        engine = make_engine(api_settings.sql_url())  # a count gone wrong behind the monitor's back
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE label_count SET jobs = jobs + 2 WHERE label = :l AND status = 'failed'"),
                               {"l": LABEL})  # fmt: skip
        await engine.dispose()
        checked = (await admin.get(f"/api/labels/{LABEL}/summary", params={"verify": "true"})).json()
    production = api_settings.databases[0]
    assert checked["verification"]["consistent"] is False
    assert checked["verification"]["differences"][production] == [
        {"module": "ModB", "status": "failed", "kept": {"jobs": 7, "events": 50}, "reduced": {"jobs": 5, "events": 50}}
    ]


async def test_grab_manifest_and_exactly(http: httpx.AsyncClient) -> None:
    manifest = (await http.get(f"/api/grab/{LABEL}")).json()
    assert manifest["format"] == "prodflow.manifest/1" and manifest["count"] == 18
    first = manifest["files"][0]
    assert first["path"] == "ModA/100_0_p1/x.root" and first["size"] == 100 and first["adler32"] == "00000000"
    one_run = (await http.get(f"/api/grab/{LABEL}", params={"module": "ModA", "run": 105})).json()
    assert [f["run"] for f in one_run["files"]] == [105]
    exactly = await http.get(f"/api/grab/{LABEL}/exactly", params={"module": "ModB"})
    assert exactly.headers["content-type"].startswith("text/plain")
    assert exactly.text == "".join(f"ModB {run} 1\n" for run in range(120, 130))
    running = (await http.get(f"/api/grab/{LABEL}/exactly", params={"status": "running"})).text.splitlines()
    assert len(running) == 7


async def test_metrics_expose_job_counts(app_url: str, api_settings: MonitorSettings, seeded: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=app_url) as client:
        text = (await client.get("/metrics")).text
    production = api_settings.databases[0]
    assert f'prodflow_jobs{{database="{production}",status="completed"}} 18.0' in text
    assert "prodflow_monitor_cycle_seconds_bucket" in text
