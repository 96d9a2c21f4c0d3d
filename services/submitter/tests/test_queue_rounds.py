"""When the submission loop runs a round: at once when slots free up, not only every ``submit_interval_s``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from prodflow_core import jobdocs
from prodflow_core.counts import site_counts
from prodflow_submitter.site_queue import order_key
from prodflow_submitter.sites import get_site
from submitter_support import MANAGER, Api, eventually, jobs_file, make_settings, put_site, running, unique_label

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
AT = "2026-12-02T10:00:00Z"


async def test_freed_slots_start_a_round_at_once(
    tmp_path: Path, couch_url: str, request_api: tuple[str, dict[str, bytes], list[str]]
) -> None:
    settings = make_settings(tmp_path, couch_url, request_api[0], submit_interval_s=300.0)
    async with running(settings) as api:
        await put_site(api, "narrow", max_running=2, command_template="true")
        label = unique_label()
        body = {"jobs": jobs_file(label, runs=4, per_run=1, by_time=0), "site": "narrow"}
        assert (await api.client.post("/api/campaigns", json=body, headers=MANAGER)).status_code == 201

        async def submitted(count: int) -> bool:
            return sum(d["status"] == "submitted" and bool(d["backend"]["id"]) for d in await api.jobs(label)) == count

        await eventually(lambda: submitted(2), what="the first 2 jobs (max_running) submitted")
        docs = [d for d in await api.jobs(label) if d["status"] == "submitted"]
        for doc in docs:  # what the monitor does when they finish; the feed brings it to the submitter
            for step in ("running", "completed"):
                doc.update(jobdocs.transition(doc, step, AT, "test stands in for the monitor"))
        await api.db().bulk_docs(docs)
        # well before the next timed round (300 s): the feed's batch that freed the slots woke the loop
        await eventually(lambda: submitted(2), timeout_s=15, what="the other 2 submitted into the freed slots")
        assert {d["status"] for d in await api.jobs(label)} == {"submitted", "completed"}


async def test_a_stale_queue_entry_is_dropped_not_picked_again(
    tmp_path: Path, couch_url: str, request_api: tuple[str, dict[str, bytes], list[str]]
) -> None:
    settings = make_settings(tmp_path, couch_url, request_api[0])
    async with running(settings) as api:
        label = await queued_on_a_drained_site(api, "stale", max_running=2, runs=3)
        first, *others = sorted(await api.jobs(label), key=lambda d: d["_id"])
        queued = api.loop.waiting["stale"]
        cancelled = jobdocs.transition(first, "cancelled", AT, "test: cancelled behind the queue's back")
        await api.db().bulk_docs([cancelled])
        await eventually(lambda: _true(len(queued) == 2), what="the feed dropping the cancelled job")
        # as a late copy would (a campaign's created documents handed over after the feed moved past them)
        api.loop.track("data-production", first, first["_id"])
        assert ("data-production", first["_id"]) in queued  # first in the site's order: picked before the others
        await api.client.post("/api/sites/stale/undrain", headers=MANAGER)

        async def others_submitted() -> bool:
            return {d["_id"] for d in await api.jobs(label) if d["status"] == "submitted"} == {d["_id"] for d in others}

        await eventually(others_submitted, what="both waiting jobs submitted into the 2 slots")
        assert not queued and (await api.db().get(first["_id"]))["status"] == "cancelled"


async def test_a_claim_the_feed_counts_while_the_slots_are_read_still_holds_its_slot(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queued_on_a_drained_site(api, "race", max_running=1, runs=2)
    loop = api.loop
    counter = loop.runtime.counter
    feed_may_count = asyncio.Event()
    apply = counter.apply

    async def held_apply(database: str, docs: Any) -> Any:
        await feed_may_count.wait()
        return await apply(database, docs)

    async def counts_read_then_feed_catches_up(engine: Any, sites: list[str]) -> Any:
        counts = await site_counts(engine, sites)  # before the feed counted the claim ...
        feed_may_count.set()  # ... which it does, and drops the claim, before this read's answer is used
        await eventually(lambda: _true(not loop._claimed), what="the feed counting the claim")
        return counts

    monkeypatch.setattr(counter, "apply", held_apply)
    async with loop.runtime.sessions() as session:
        site = await get_site(session, "race")
    assert site is not None
    assert await loop.submit_site(site) == 1  # its one slot
    monkeypatch.setattr("prodflow_submitter.queue.site_counts", counts_read_then_feed_catches_up)
    assert await loop.active_count("race") >= 1  # was 0: the claim counted on neither side
    assert await loop.submit_site(site) == 0


async def test_a_claim_writes_on_the_revisions_held_without_reading_them(
    tmp_path: Path,
    couch_url: str,
    request_api: tuple[str, dict[str, bytes], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(tmp_path, couch_url, request_api[0])
    async with running(settings) as api:
        label = await queued_on_a_drained_site(api, "held", max_running=6, runs=6)
        db = api.loop.runtime.db("data-production")
        read: list[str] = []
        get_many = db.get_many

        async def counted_get_many(ids: list[str], **kwargs: Any) -> dict[str, dict[str, Any]]:
            read.extend(ids)
            return await get_many(ids, **kwargs)

        monkeypatch.setattr(db, "get_many", counted_get_many)
        await api.client.post("/api/sites/held/undrain", headers=MANAGER)

        async def all_submitted() -> bool:
            return all(d["status"] == "submitted" and d["backend"]["id"] for d in await api.jobs(label))

        await eventually(all_submitted, what="the 6 jobs claimed and sent")
        assert read == []  # every claim wrote on the revision created or followed, and none conflicted
        # a local backend's ids are the jobs' names: the claim records id and command, and nothing follows it
        for doc in await api.jobs(label):
            assert doc["backend"]["id"] == jobdocs.backend_job_name(doc) and doc["command"].startswith("echo WaterBi")
            assert doc["_rev"].startswith("2-") and doc["backend"]["state"] == "SUBMITTING"


async def test_a_restart_queues_the_waiting_jobs_from_the_ledger_in_site_order(
    tmp_path: Path, couch_url: str, request_api: tuple[str, dict[str, bytes], list[str]]
) -> None:
    settings = make_settings(tmp_path, couch_url, request_api[0])
    label = unique_label()
    modules = [{"module": "WaterBi214Run", "run_numbers": [300002, 300001]},
               {"module": "TeLoadedBipo212", "run_numbers": [300003], "priority": 5}]  # fmt: skip
    body = {"jobs": {"rat_v": "7", "experiment": "snoplus", "label": label, "modules": modules}, "site": "later"}
    async with running(settings, drop=False) as api:
        await put_site(api, "later", max_running=1, command_template="true")
        await api.client.post("/api/sites/later/drain", headers=MANAGER)
        assert (await api.client.post("/api/campaigns", json=body, headers=MANAGER)).status_code == 201
        await eventually(lambda: _true(len(api.loop.waiting["later"]) == 3), what="3 jobs queued")
        before = dict(api.loop.waiting["later"])
    async with running(settings) as api:
        await asyncio.wait_for(api.loop.ready.wait(), 10)
        after = api.loop.waiting["later"]
        assert after.keys() == before.keys()
        assert after == before  # from the ledger and the campaign, what the documents said
        order = [w.run for w in sorted(after.values(), key=order_key(["priority", "serial"]))]
        assert order == [300003, 300001, 300002]  # priority first, then one campaign's jobs by id
        assert await api.db().get_or_none("_design/submitter") is None  # no view, so no index to wait for
        await api.client.post("/api/sites/later/undrain", headers=MANAGER)

        async def first_submitted() -> bool:
            return [d["run"] for d in await api.jobs(label) if d["status"] == "submitted"] == [300003]

        await eventually(first_submitted, what="the priority-5 job sent first into the one slot")


async def _true(value: bool) -> bool:
    return value


async def queued_on_a_drained_site(api: Api, site: str, *, max_running: int, runs: int) -> str:
    """A new label of ``runs`` jobs, all in the submission loop's queue of the drained ``site``."""
    await put_site(api, site, max_running=max_running, command_template="true")
    await api.client.post(f"/api/sites/{site}/drain", headers=MANAGER)
    label = unique_label()
    body = {"jobs": jobs_file(label, runs=runs, per_run=1, by_time=0), "site": site}
    assert (await api.client.post("/api/campaigns", json=body, headers=MANAGER)).status_code == 201
    await eventually(lambda: _true(len(api.loop.waiting[site]) == runs), what=f"{runs} jobs queued")
    return label


SLOW_CONDOR_SUBMIT = """#!/bin/sh
# condor_submit -terse <file>, taking its time: the jobs of the file as one cluster
sleep 4
n=$(grep -c '^queue' "$2")
echo "77.0 - 77.$((n - 1))"
"""


async def test_a_slow_backend_submission_holds_no_other_site(
    tmp_path: Path,
    couch_url: str,
    request_api: tuple[str, dict[str, bytes], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "condor_submit").write_text(SLOW_CONDOR_SUBMIT)
    (fake_bin / "condor_submit").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    async with running(make_settings(tmp_path, couch_url, request_api[0])) as api:
        # "a-slow" comes first in each round's sites
        await put_site(api, "a-slow", "htcondor", max_running=10, options={"work_dir": str(tmp_path / "condor")})
        await put_site(api, "b-quick", max_running=10, command_template="true")
        slow, quick = unique_label("Slow"), unique_label("Quick")
        for label, site in ((slow, "a-slow"), (quick, "b-quick")):
            body = {"jobs": jobs_file(label, runs=2, per_run=1, by_time=0), "site": site}
            assert (await api.client.post("/api/campaigns", json=body, headers=MANAGER)).status_code == 201

        async def sent(label: str) -> bool:
            return all(d["status"] == "submitted" and d["backend"]["id"] for d in await api.jobs(label))

        await eventually(lambda: sent(quick), timeout_s=3.0, what="the quick site's jobs at its backend")
        slow_docs = await api.jobs(slow)
        assert {d["status"] for d in slow_docs} == {"submitted"}  # claimed ...
        assert not any(d["backend"]["id"] for d in slow_docs)  # ... and still on their way (condor_submit sleeps)
        await eventually(lambda: sent(slow), what="the slow site's jobs at its backend")
        assert sorted(d["backend"]["id"] for d in await api.jobs(slow)) == ["77.0", "77.1"]
