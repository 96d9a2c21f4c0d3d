"""bench_monitor's last figure: from a job's end at its backend to its ``job.completed`` on the gateway's SSE stream.

The monitor loop and its feeds run in the bench's process; the job ends come from a real ``local`` backend; the
stream is read in a thread, as a web frontend would read it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from figures import Figure, nearest_rank
from jobgen import submit_locally
from prodflow_core.backends import LocalBackend
from prodflow_core.couch import CouchClient, CouchDatabase
from prodflow_core.jobdocs import backend_job_name
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.settings import MonitorSettings


async def job_event_latency(
    settings: MonitorSettings, couch: CouchClient, loop: MonitorLoop, db: CouchDatabase,
    sites: list[dict[str, Any]], background: list[dict[str, Any]], docs: list[dict[str, Any]], gateway_url: str,
    token: str,
) -> list[Figure]:  # fmt: skip
    """Backend job end -> ``job.completed`` on the gateway's SSE stream, the loop and its feeds running."""
    stop_event = asyncio.Event()
    followers = loop.followers()  # from the kept counts' checkpoint: they catch up on the cycles' moves first
    tasks = [asyncio.create_task(f.run(stop_event)) for f in followers]
    tasks.append(asyncio.create_task(loop.run(stop_event)))
    slow: LocalBackend | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*(f.caught_up.wait() for f in followers)), 600)
        if background:  # active jobs that stay active: polled by every cycle, never changing
            slow = await submit_locally(db, sites[0], background, "sleep 600")
            deadline = time.monotonic() + 120
            while len(loop.active[db.name]) < len(background):
                assert time.monotonic() < deadline, "the feed did not bring the background jobs"
                await asyncio.sleep(0.2)
        since = await couch.db(settings.events_db).update_seq()
        arrivals: dict[str, float] = {}
        wanted = {d["_id"] for d in docs}
        ready = threading.Event()
        reader = threading.Thread(target=_follow_sse, args=(gateway_url, token, since, wanted, arrivals, ready))
        reader.start()
        await asyncio.to_thread(ready.wait, 30)
        fast = await submit_locally(db, sites[1], docs, "sleep 2; echo payload > out.root")
        recorded = time.time()  # the monitor can know a job only once submitter recorded its backend id
        await asyncio.to_thread(reader.join, 300)
        assert len(arrivals) == len(docs), f"{len(arrivals)} of {len(docs)} job.completed events arrived"
        print(f"latency: {len(loop.active[db.name])} jobs active at the end", file=sys.stderr)
    finally:
        stop_event.set()
        await asyncio.gather(*tasks)
        if slow is not None:
            await slow.cancel([backend_job_name(d) for d in background])
    states = await fast.status([backend_job_name(d) for d in docs])
    finished = {name.rsplit(":a", 1)[0]: max(recorded, _seconds(s.finished_at or "")) for name, s in states.items()}
    rows = (await couch.db(settings.events_db).all_docs(include_docs=True)).rows
    stored: dict[str, float] = {}
    for row in rows:
        if row["doc"].get("type") == "org.prodflow.job.completed":
            for doc_id in row["doc"]["data"]["job_ids"]:
                stored.setdefault(doc_id, _seconds(row["doc"]["time"]))
    sse = [arrivals[d["_id"]] - finished[d["_id"]] for d in docs]
    store = [stored[d["_id"]] - finished[d["_id"]] for d in docs]
    n, active = len(docs), len(docs) + len(background)
    return [
        Figure(
            f"job end -> SSE job.completed p{p} ({n} jobs, {active} active)",
            nearest_rank(sse, q),
            "s",
            f"event stored p{p}",
            nearest_rank(store, q),
        )
        for p, q in (("50", 0.5), ("99", 0.99))
    ]


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _follow_sse(url: str, token: str, since: str, wanted: set[str], arrivals: dict[str, float], ready: Any) -> None:
    params = {"since": since, "types": "job.completed"}
    auth = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=url, headers=auth, timeout=120) as client,
        client.stream("GET", "/api/events", params=params) as stream,
    ):
        ready.set()
        for line in stream.iter_lines():
            if line.startswith("data: "):
                now = time.time()
                for doc_id in json.loads(line[6:])["data"]["job_ids"]:
                    if doc_id in wanted:
                        arrivals.setdefault(doc_id, now)
                if len(arrivals) >= len(wanted):
                    return
