"""A small label behind a big label's backlog in the job feed is counted (and completed) before the feed gets there."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from loop_kit import monitor_loop
from prodflow_core.couch import Change, ChangesFollower, CouchClient, CouchDatabase
from prodflow_core.counts import label_status_counts
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import COMPLETED
from prodflow_monitor import lookahead as lookahead_module
from prodflow_monitor.lookahead import Lookahead
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.report import CycleReport
from prodflow_monitor.settings import MonitorSettings
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration


async def _write(db: CouchDatabase, docs: list[dict[str, Any]]) -> None:
    results = await db.bulk_docs(docs)
    assert all(result.ok for result in results)
    for doc, result in zip(docs, results, strict=True):
        doc["_rev"] = result.rev


def _completed(doc: dict[str, Any]) -> dict[str, Any]:
    at = utc_now()
    return {**doc, "status": COMPLETED, "history": [*doc["history"], {"status": COMPLETED, "at": at}], "updated_at": at}


@dataclass(frozen=True)
class Behind:
    """A monitor loop whose job feed has read one batch of a big label's new documents, and its lookahead."""

    loop: MonitorLoop
    name: str
    feed: ChangesFollower
    lookahead: Lookahead

    @property
    def db(self) -> CouchDatabase:
        return self.loop.dbs[self.name]

    @property
    def engine(self) -> AsyncEngine:
        return self.loop.counter.engine


@contextlib.asynccontextmanager
async def behind(couch: CouchClient, settings: MonitorSettings, kit: Any, big_jobs: int) -> AsyncIterator[Behind]:
    """``big_jobs`` new documents of label Big, the feed behind after one batch of 100, the lookahead's first look
    made (it starts at the database's end)."""
    settings.changes_batch = 100
    async with monitor_loop(couch, settings) as loop:
        name = settings.databases[0]
        feed = loop.followers()[0]
        lookahead = loop.lookaheads()[0]
        await _write(loop.dbs[name], [kit.job_doc("Big", "M", run, "busy") for run in range(big_jobs)])
        assert await feed.poll_once(wait=False) == 100 and feed.behind
        assert await lookahead.step() == 0  # the first look starts at the database's end
        yield Behind(loop, name, feed, lookahead)


async def test_a_small_label_behind_a_big_backlog_is_counted_and_completed_before_the_feed_reaches_it(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any
) -> None:
    async with behind(couch, monitor_settings, kit, big_jobs=1000) as b:
        name, db, engine, feed, lookahead = b.name, b.db, b.engine, b.feed, b.lookahead
        small = kit.job_doc("Small", "M", 1, "quick")
        await _write(db, [small])
        await _write(db, [_completed(small)])

        assert await lookahead.step() == 1  # Small's one document, while ~900 of Big are still before it
        assert await label_status_counts(engine, name, "Small") == {COMPLETED: 1}
        assert (await label_status_counts(engine, name, "Big"))["waiting"] < 100  # what the feed counted so far
        events = await kit.all_docs(couch.db(monitor_settings.events_db))
        assert sorted((e["type"], e["subject"]) for e in events) == [
            ("org.prodflow.job.completed", small["_id"]),  # also announced ahead of the feed, before the label
            ("org.prodflow.label.completed", "Small"),
        ]

        await _write(db, [kit.job_doc("Big", "M", 1000, "busy"), kit.job_doc("Later", "M", 1, "quick")])
        assert await lookahead.step() == 1  # Later; Big has more documents than a look reads: left to the feed

        while await feed.poll_once(wait=False):
            pass
        assert not feed.behind and await lookahead.step() == 0
        assert await label_status_counts(engine, name, "Small") == {COMPLETED: 1}  # the feed's pass moved nothing
        assert await label_status_counts(engine, name, "Later") == {"waiting": 1}
        assert await label_status_counts(engine, name, "Big") == {"waiting": 1001}
        events = await kit.all_docs(couch.db(monitor_settings.events_db))
        assert sum(e["type"] == "org.prodflow.label.completed" for e in events) == 1  # announced once
        assert sum(e["type"] == "org.prodflow.job.completed" for e in events) == 1  # the feed did not again


async def test_a_label_with_many_changes_past_the_feed_is_left_to_it_until_it_has_caught_up(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any
) -> None:
    async with behind(couch, monitor_settings, kit, big_jobs=300) as b:
        name, db, engine, feed, lookahead = b.name, b.db, b.engine, b.feed, b.lookahead
        growing = [kit.job_doc("Growing", "M", run, "quick") for run in range(3)]
        await _write(db, growing)
        assert await lookahead.step() == 3
        await _write(db, [kit.job_doc("Growing", "M", run, "quick") for run in range(3, 503)])
        assert await lookahead.step() == 0  # 500 more: from now on the feed's
        await _write(db, [_completed(doc) for doc in growing])
        assert await lookahead.step() == 0
        assert await label_status_counts(engine, name, "Growing") == {"waiting": 3}  # as of the first look

        while await feed.poll_once(wait=False):
            pass
        assert await lookahead.step() == 0
        assert await label_status_counts(engine, name, "Growing") == {"waiting": 500, COMPLETED: 3}


async def test_a_burst_past_the_feed_is_skipped_and_a_small_label_in_it_is_counted_whole_at_its_next_change(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookahead_module, "WINDOW", 50)
    async with behind(couch, monitor_settings, kit, big_jobs=300) as b:
        name, db, engine, lookahead = b.name, b.db, b.engine, b.lookahead
        small = [kit.job_doc("Small", "M", run, "quick") for run in range(2)]
        await _write(db, [*small, *(kit.job_doc("Big", "M", run, "busy") for run in range(300, 400))])
        assert await lookahead.step() == 0  # 102 changes: a burst, not read
        assert await label_status_counts(engine, name, "Small") == {}
        await _write(db, [_completed(small[0])])
        assert await lookahead.step() == 2  # both of Small's documents, the one created in the burst too
        assert await label_status_counts(engine, name, "Small") == {"waiting": 1, COMPLETED: 1}


async def test_a_small_label_created_in_a_burst_is_counted_whole_once_the_monitor_moves_one_of_its_jobs(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookahead_module, "WINDOW", 50)
    async with behind(couch, monitor_settings, kit, big_jobs=300) as b:
        name, db, engine, loop, lookahead = b.name, b.db, b.engine, b.loop, b.lookahead
        small = kit.job_doc("Small", "M", 1, "quick")
        await _write(db, [small, *(kit.job_doc("Big", "M", run, "busy") for run in range(300, 400))])
        assert await lookahead.step() == 0  # a burst, not read
        await _write(db, [kit.job_doc("Big", "M", run, "busy") for run in range(400, 500)])  # the burst goes on

        written = await loop.writes.write(name, [small["_id"]], _completed, CycleReport())
        assert [doc["status"] for doc in written] == [COMPLETED]
        assert await lookahead.step() == 1  # in a burst again, but Small's job was moved here: counted whole
        assert await label_status_counts(engine, name, "Small") == {COMPLETED: 1}
        events = await kit.all_docs(couch.db(monitor_settings.events_db))
        assert sorted(e["type"] for e in events) == ["org.prodflow.job.completed", "org.prodflow.label.completed"]
        assert await lookahead.step() == 0  # noted once: not read again


async def test_a_look_reads_at_most_look_docs_documents_and_the_labels_past_them_at_the_next_look(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookahead_module, "LOOK_DOCS", 2)
    async with behind(couch, monitor_settings, kit, big_jobs=300) as b:
        engine, lookahead = b.engine, b.lookahead
        await _write(b.db, [kit.job_doc(label, "M", run, "quick") for label in ("One", "Two") for run in range(2)])
        assert await lookahead.step() == 2  # One's two documents; Two waits
        assert await label_status_counts(engine, b.name, "Two") == {}
        assert await lookahead.step() == 2
        assert await label_status_counts(engine, b.name, "Two") == {"waiting": 2}


async def test_the_lookahead_counts_only_while_the_feed_is_not_counting_the_same_database(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any
) -> None:
    """Two transactions that read the same ledger rows before either wrote would both move the counts."""
    async with monitor_loop(couch, monitor_settings) as loop:
        name = monitor_settings.databases[0]
        small = kit.job_doc("Small", "M", 1, "quick")
        await _write(loop.dbs[name], [small])
        change = Change(id=small["_id"], seq="1", deleted=False, doc=small)
        async with loop._counting[name]:  # as the feed's handler holds it while it counts a batch
            ahead = asyncio.create_task(loop.count_ahead(name, [change]))
            await asyncio.sleep(0.2)
            assert not ahead.done()
        await ahead
        assert await label_status_counts(loop.counter.engine, name, "Small") == {"waiting": 1}


async def test_a_feed_batch_read_before_the_lookahead_saw_a_newer_state_does_not_announce_the_older_one(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any
) -> None:
    async with behind(couch, monitor_settings, kit, big_jobs=300) as b:
        name, db, loop, lookahead = b.name, b.db, b.loop, b.lookahead
        small = kit.job_doc("Small", "M", 1, "quick")
        await _write(db, [small])
        running = {**small, "status": "running", "history": [*small["history"], {"status": "running", "at": "t"}]}
        await _write(db, [running])
        read_by_the_feed = dict(running)  # a batch the feed has read, not handled yet
        await _write(db, [_completed(running)])
        assert await lookahead.step() == 1

        await loop.on_changes(name, [Change(id=small["_id"], seq="1", deleted=False, doc=read_by_the_feed)])
        events = await kit.all_docs(couch.db(monitor_settings.events_db))
        assert sorted(e["type"] for e in events) == ["org.prodflow.job.completed", "org.prodflow.label.completed"]
