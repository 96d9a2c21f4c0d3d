"""The submitter's follower of each job database: kept campaign and site counts, and the in-memory queue.

One ``_changes`` reader per database does both: it applies each batch to the kept counts
(``prodflow_core.counts``, its checkpoint stored beside them) and hands every document to the submission
loop's queue; a batch that brings waiting jobs, or frees slots of a site with waiting jobs, starts a round at
once. It runs whether or not the submission loop does, so campaign and site counts stay current.
"""

from __future__ import annotations

from prodflow_core import jobdocs
from prodflow_core.couch import Change, ChangesFollower
from prodflow_core.counts import CountsCheckpoints, counted_docs

from prodflow_submitter.queue import SubmissionLoop
from prodflow_submitter.runtime import Runtime

BATCH = 2000


def job_feeds(runtime: Runtime, loop: SubmissionLoop) -> list[ChangesFollower]:
    """One follower per job database, registered as the loop's feeds (it waits for them to catch up)."""
    followers = []
    for name, db in runtime.databases.items():

        async def handle(changes: list[Change], database: str = name) -> None:
            counted = await runtime.counter.apply(database, counted_docs(changes))
            woke = loop.frees_slots(counted)
            for change in changes:
                doc = None if change.deleted else change.doc
                loop.track(database, doc, change.id)
                woke = woke or bool(doc and doc.get("status") == jobdocs.WAITING)
            if woke:
                runtime.wake.set()

        runtime.feeds[name] = follower = ChangesFollower(
            db,
            "submitter",
            handle,
            batch_size=BATCH,
            longpoll_s=runtime.settings.changes_longpoll_s,
            checkpoints=CountsCheckpoints(runtime.counter, name),
            stream=True,
        )
        followers.append(follower)
    loop.feeds = followers
    return followers
