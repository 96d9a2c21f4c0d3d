"""Reading ``_changes`` as a continuous feed: one request that the server keeps open and writes each change to.

Measured on CouchDB 3.5 here, a ``_changes`` request costs the server ~2 ms of CPU however few changes it brings,
and a follower that keeps up reads once per write it follows: two followers of a job database made a third of
the server's requests in ``bench_throughput.py``. On a continuous feed the server only writes the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from prodflow_core.couch.database import CouchDatabase
from prodflow_core.waiting import first_of

Row = dict[str, Any]
QUIET_S = 0.005
"""A gathering batch is handled once no row came for this long (see :func:`gather`)."""


class FeedEnded(Exception):
    """Put on the queue after the last row when the server ended the feed (its ``last_seq`` line)."""


async def read_feed(
    db: CouchDatabase,
    rows: asyncio.Queue[Row | BaseException],
    *,
    since: str,
    include_docs: bool,
    selector: dict[str, Any] | None,
    heartbeat_s: float,
    opened: asyncio.Event | None = None,
) -> None:
    """Put each change after ``since`` on ``rows`` as the server sends it, then :class:`FeedEnded`; a failure is
    put on ``rows`` instead of raised (the reader of the queue raises it, after the rows that came before it).

    ``rows`` bounds how far ahead of its reader this gets: a full queue stops reading the socket, so the server
    waits. The server sends an empty line every ``heartbeat_s``; nothing for three of them is a dead connection.
    ``opened`` is set once the server has answered.
    """
    params: dict[str, Any] = {"feed": "continuous", "since": since, "include_docs": include_docs,
                              "heartbeat": int(heartbeat_s * 1000)}  # fmt: skip
    method, body = "GET", None
    if selector is not None:
        params["filter"] = "_selector"
        method, body = "POST", {"selector": selector}
    try:
        async with db.client.stream_lines(method, f"{quote(db.name, safe='')}/_changes", params=params, json_body=body,
                                          idle_s=3 * heartbeat_s + 5) as lines:  # fmt: skip
            if opened is not None:
                opened.set()
            async for line in lines:
                if not line.strip():
                    continue  # a heartbeat
                row = json.loads(line)
                if "last_seq" in row and "id" not in row:
                    break
                await rows.put(row)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await rows.put(exc)
        return
    await rows.put(FeedEnded())


@contextlib.asynccontextmanager
async def feed_rows(
    db: CouchDatabase,
    *,
    since: str,
    include_docs: bool,
    selector: dict[str, Any] | None,
    heartbeat_s: float,
    max_rows: int,
    opened: asyncio.Event | None = None,
) -> AsyncIterator[asyncio.Queue[Row | BaseException]]:
    """A continuous feed read by :func:`read_feed` in a task of its own, for as long as the block lasts: the queue
    its rows come on (up to ``max_rows`` ahead of their reader). The task is cancelled on the way out."""
    rows: asyncio.Queue[Row | BaseException] = asyncio.Queue(maxsize=max_rows)
    reader = asyncio.create_task(read_feed(db, rows, since=since, include_docs=include_docs, selector=selector,
                                           heartbeat_s=heartbeat_s, opened=opened))  # fmt: skip
    try:
        yield rows
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def take_batch(
    rows: asyncio.Queue[Row | BaseException], first: Row | BaseException, limit: int
) -> tuple[list[Row], BaseException | None]:
    """``first`` and the rows that have come after it on ``rows``, up to ``limit``; and the end (:class:`FeedEnded`)
    or failure that came right after them, if it did."""
    batch: list[Row] = []
    item: Row | BaseException = first
    while isinstance(item, dict):
        batch.append(item)
        if len(batch) >= limit or rows.empty():
            return batch, None
        item = rows.get_nowait()
    return batch, item


async def gather(rows: asyncio.Queue[Row | BaseException], up_to_s: float, *interrupts: asyncio.Event) -> None:
    """Let a batch's rows come: until none came for :data:`QUIET_S`, up to ``up_to_s``, or one of ``interrupts``.

    The rows of one write come back to back: a lone write is handled at once, a stream of writes in batches.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + up_to_s
    while (left := deadline - loop.time()) > 0 and not any(event.is_set() for event in interrupts):
        waiting = rows.qsize()
        await first_of(*interrupts, timeout_s=min(QUIET_S, left))
        if rows.qsize() == waiting:
            return
