"""Archival of a finished label and its restore, over PouchDB Server and CouchDB 3.5 (loop not running).

Both servers: CouchDB 3 purges the documents (they vanish from ``_changes``) and restores the very same
revisions; PouchDB Server has no usable ``_purge``, so the documents are deleted with a marked tombstone that the
counters skip, and come back as a new revision. The label must answer the same before, during and after.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prodflow_core.couch import CouchClient
from prodflow_core.counts import count_tables
from prodflow_core.events import utc_now
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.sql import create_tables, make_engine
from prodflow_core.testing import serving
from prodflow_monitor.app import create_app
from prodflow_monitor.archive import files, operation, tables
from prodflow_monitor.archive.operation import ArchiveStores
from prodflow_monitor.archive.reads import without_restored
from prodflow_monitor.archive.tables import ArchiveRecord, archive_tables
from prodflow_monitor.settings import MonitorSettings

pytestmark = [pytest.mark.integration, pytest.mark.both_couch, pytest.mark.timeout(120)]

LABEL = "2026-12_Archive_v1"
BUSY = "2026-12_StillRunning_v1"


def _header(settings: MonitorSettings, roles: set[str]) -> dict[str, str]:
    identity = Identity(user="dana", experiments=frozenset({"*"}), roles=frozenset(roles))
    return {IDENTITY_HEADER: sign_identity(identity, settings.identity_secret, ttl_s=86_400)}


@pytest.fixture
def settings(couch_target: str, tmp_path: Path, sites_api: Any, kit: Any) -> MonitorSettings:
    suffix = uuid.uuid4().hex[:10]
    site = f"arch-{suffix}"
    sites_api.sites[site] = kit.local_site(site, tmp_path / "work", None, (tmp_path / "se").as_uri())
    return MonitorSettings(
        couchdb_url=couch_target,
        data_dir=tmp_path / "monitor-data",
        events_db=f"events-{suffix}",
        databases=(f"data-production-{suffix}", f"data-processing-{suffix}"),
        submitter_url=sites_api.url,
        sites_ttl_s=0.5,
        changes_longpoll_s=1.0,
        run_loop=False,
        log_json=False,
    )


@pytest.fixture
def app(settings: MonitorSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def app_url(app: FastAPI) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
async def admin(app_url: str, settings: MonitorSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app_url, headers=_header(settings, {"admin"}), timeout=30) as client:
        yield client


def _job(kit: Any, settings: MonitorSettings, label: str, module: str, run: int, status: str) -> dict[str, Any]:
    doc = kit.job_doc(label, module, run, next(iter(name for name in _sites(settings))), events=10 + run % 7)
    doc["status"] = status
    if status == "completed":
        doc["outputs"] = [{"name": "o.root", "url": f"file:///se/{label}/{run}.root", "size": run, "adler32": "0a"}]
    return doc


def _sites(settings: MonitorSettings) -> list[str]:
    return [f"arch-{settings.events_db.removeprefix('events-')}"]


async def _counted(client: httpx.AsyncClient, kit: Any, jobs: int) -> None:
    async def done() -> bool:
        items = (await client.get("/api/labels")).json()["items"]
        return sum(item["jobs"] for item in items) == jobs

    await kit.wait_until(done, 30, f"{jobs} counted jobs", every_s=0.05)


async def _state(client: httpx.AsyncClient, kit: Any, wanted: str) -> dict[str, Any]:
    answer: dict[str, Any] = {}

    async def reached() -> bool:
        response = await client.get(f"/api/labels/{LABEL}/archive")
        answer.update(response.json())
        assert not answer.get("error"), answer
        return answer.get("state") == wanted

    await kit.wait_until(reached, 60, f"archive state {wanted}", every_s=0.1)
    return answer


async def _answers(client: httpx.AsyncClient, some_ids: list[str]) -> dict[str, Any]:
    """What the label answers: summary, label list, manifest, .exactly, the paged job list, jobs by id."""
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"label": LABEL, "limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/jobs", params=params)).json()
        listed += [{k: v for k, v in job.items() if k != "archived"} for job in page["items"]]
        if (cursor := page["next"]) is None:
            break
    summary = (await client.get(f"/api/labels/{LABEL}/summary")).json()
    manifest = (await client.get(f"/api/grab/{LABEL}", params={"status": ""})).json()
    jobs = [(await client.get(f"/api/jobs/{job_id}")).json() for job_id in some_ids]
    return {
        "summary": {k: v for k, v in summary.items() if k != "archived"},
        "labels": (await client.get("/api/labels")).json(),
        "manifest": {k: v for k, v in manifest.items() if k not in ("generated_at", "archived")},
        "exactly": (await client.get(f"/api/grab/{LABEL}/exactly", params={"status": "completed"})).text,
        "listed": listed,
        "jobs": [{k: v for k, v in job.items() if k != "archived"} for job in jobs],
    }


def _file_sums(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "adler32": f"{zlib.adler32(data):08x}"}


async def test_a_finished_label_is_archived_answers_the_same_and_is_restored(
    couch: CouchClient, settings: MonitorSettings, admin: httpx.AsyncClient, kit: Any, tmp_path: Path
) -> None:
    production, processing = (couch.db(name) for name in settings.databases)
    statuses = ["completed"] * 4 + ["failed", "cancelled"]
    docs = [_job(kit, settings, LABEL, "ModA" if i < 30 else "ModB", 100 + i, statuses[i % 6]) for i in range(42)]
    await production.bulk_docs(docs[:36])
    await processing.bulk_docs(docs[36:])
    await production.bulk_docs([_job(kit, settings, BUSY, "ModC", 1, "running")])
    events = couch.db(settings.events_db)
    await events.ensure()
    await events.put({"_id": "evt-0001", "type": "org.prodflow.label.completed", "data": {"label": LABEL}})
    await _counted(admin, kit, 43)
    some_ids = [docs[0]["_id"], docs[13]["_id"], docs[40]["_id"]]
    before = await _answers(admin, some_ids)
    originals = {doc["_id"]: await (production if i < 36 else processing).get(doc["_id"]) for i, doc in enumerate(docs)}

    async with httpx.AsyncClient(base_url=admin.base_url, headers=_header(settings, {"manager"})) as manager:
        refused = await manager.post(f"/api/labels/{LABEL}/archive")
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    busy = await admin.post(f"/api/labels/{BUSY}/archive")
    assert busy.status_code == 409 and "running" in busy.json()["detail"]
    assert (await admin.post("/api/labels/no_such_label/archive")).status_code == 404
    assert (await admin.post(f"/api/labels/{LABEL}/restore")).status_code == 409  # not archived

    started = await admin.post(f"/api/labels/{LABEL}/archive")
    assert started.status_code == 202, started.text
    record = await _state(admin, kit, "archived")
    server = await couch.info()
    assert record["method"] == ("delete" if "express-pouchdb" in json.dumps(server) else "purge")
    assert record["progress"] == {"done": 42, "jobs": 42}

    # The documents are gone from the job databases; the archive on the label's storage element holds them.
    left = [row for db in (production, processing) for row in (await db.all_docs(startkey=f"job:{LABEL}:",
            endkey=f"job:{LABEL}:\ufff0")).rows]  # fmt: skip
    assert left == []
    folder = tmp_path / "se" / "archive" / LABEL
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["label"] == LABEL and manifest["jobs"] == 42 and manifest["created_by"] == "dana"
    assert manifest["counts"] == {"cancelled": 7, "completed": 28, "failed": 7}
    for entry in [*manifest["databases"].values(), manifest["events"]]:
        assert {k: entry[k] for k in ("size", "sha256", "adler32")} == _file_sums(folder / entry["name"])
    assert manifest["databases"][production.name]["documents"] == 36 and manifest["events"]["documents"] == 1

    # A later change counted proves the feed went past the removals: they moved no count.
    await production.bulk_docs([_job(kit, settings, BUSY, "ModC", 2, "running")])
    await _counted(admin, kit, 44)
    after = await _answers(admin, some_ids)
    assert after == {**before, "labels": after["labels"]}
    assert [i for i in after["labels"]["items"] if i["label"] == LABEL] == [
        i for i in before["labels"]["items"] if i["label"] == LABEL
    ]
    assert (await admin.get(f"/api/jobs/{some_ids[1]}")).json()["archived"] is True
    assert (await admin.get(f"/api/labels/{LABEL}/summary")).json()["archived"] is True
    verified = (await admin.get(f"/api/labels/{LABEL}/summary", params={"verify": "true"})).json()
    assert verified["verification"]["consistent"] is True and verified["verification"]["source"] == "archive"
    assert (await admin.post(f"/api/labels/{LABEL}/archive")).json()["state"] == "archived"  # asking again: no-op

    assert (await admin.post(f"/api/labels/{LABEL}/restore")).status_code == 202
    assert (await _state(admin, kit, "restored"))["archived"] is False
    for doc_id, original in originals.items():
        restored = await (production if doc_id in {d["_id"] for d in docs[:36]} else processing).get(doc_id)
        if record["method"] == "purge":
            assert restored == original  # the very same revision
        else:
            assert {k: v for k, v in restored.items() if k != "_rev"} == {
                k: v for k, v in original.items() if k != "_rev"
            }
            assert int(restored["_rev"].split("-")[0]) == int(original["_rev"].split("-")[0]) + 2
    await production.bulk_docs([_job(kit, settings, BUSY, "ModC", 3, "running")])
    await _counted(admin, kit, 45)
    restored_answers = await _answers(admin, some_ids)
    assert restored_answers["summary"] == before["summary"] and restored_answers["exactly"] == before["exactly"]
    assert restored_answers["manifest"] == before["manifest"]
    assert (await admin.get(f"/api/labels/{LABEL}/summary")).json()["archived"] is False


def test_the_archive_operations_are_in_the_openapi(tmp_path: Path) -> None:
    paths = create_app(MonitorSettings(data_dir=tmp_path, log_json=False)).openapi()["paths"]
    assert set(paths["/api/labels/{label}/archive"]) == {"get", "post"}
    assert set(paths["/api/labels/{label}/restore"]) == {"post"}
    assert "202" in paths["/api/labels/{label}/archive"]["post"]["responses"]


async def test_an_interrupted_archival_and_restore_resume_where_they_stopped(
    couch: CouchClient, tmp_path: Path, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after a kill -9: each step run again (or resumed from the state reached) completes, nothing twice."""
    monkeypatch.setattr(operation, "MEMBER_DOCS", 10)  # several members from a few dozen jobs
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}")
    await create_tables(engine, [*count_tables(), *archive_tables()])
    db = couch.db(f"data-production-{uuid.uuid4().hex[:10]}")
    events = couch.db(f"events-{uuid.uuid4().hex[:10]}")
    await db.ensure()
    await events.ensure()
    try:
        docs = [kit.job_doc(LABEL, "ModA", run, "site-a") for run in range(1, 31)]
        for doc in docs:
            doc["status"] = "completed"
        await db.bulk_docs(docs)
        originals = {doc["_id"]: await db.get(doc["_id"]) for doc in docs}
        stores = ArchiveStores(engine, [db], events)
        at = utc_now()
        folder = (tmp_path / "se" / "archive" / LABEL).as_uri()
        record = ArchiveRecord(LABEL, "snoplus", tables.ARCHIVING, folder, "", 0, 0, "", "dana", at, at)
        await operation.write_archive(stores, record)
        await operation.write_archive(stores, record)  # killed before "written" was seen: written again
        assert len(await tables.index_page(engine, LABEL, None, 100)) == 30

        # Killed while removing: a third of the documents gone.
        written = await tables.load_archive(engine, LABEL)
        assert written is not None and written.state == tables.WRITTEN
        method = await operation._removal_method(db)
        first = {doc["_id"]: originals[doc["_id"]]["_rev"] for doc in docs[:10]}
        await operation._remove_page(db, LABEL, first, method)
        await tables.set_archive(engine, LABEL, state=tables.REMOVING, method=method)
        resumed = await tables.load_archive(engine, LABEL)
        assert resumed is not None
        await operation.archive_label(stores, resumed)
        archived = await tables.load_archive(engine, LABEL)
        assert archived is not None and archived.state == tables.ARCHIVED and archived.done == 30
        assert (await db.get_many(list(originals))) == {}

        # Killed while restoring: the first member back already.
        manifest = await files.read_manifest(folder)
        name = manifest["databases"][db.name]["name"]
        first_member = await anext(files.members_of(folder, name))
        assert len(first_member) == 10
        await operation._restore_member(db, first_member)
        await tables.set_archive(engine, LABEL, state=tables.RESTORING)
        await operation.restore_label(stores, archived)
        restored = await tables.load_archive(engine, LABEL)
        assert restored is not None and restored.state == tables.RESTORED
        assert await tables.index_page(engine, LABEL, None, 10) == []
        back = await db.get_many(list(originals))
        assert set(back) == set(originals)
        # The documents that came back are not news for the event stream; a later change of one is.
        later = {**back[docs[0]["_id"]], "status": "waiting", "updated_at": "2099-01-01T00:00:00.000Z"}
        assert await without_restored(engine, [*back.values(), later]) == [later]
        if method == operation.PURGE:
            assert back == originals
        else:
            assert all({**back[i], "_rev": ""} == {**originals[i], "_rev": ""} for i in originals)
    finally:
        await db.drop()
        await events.drop()
        await engine.dispose()
