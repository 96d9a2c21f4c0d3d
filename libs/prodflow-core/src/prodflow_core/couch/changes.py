"""A ``_changes`` follower that resumes from a checkpoint stored after each handled batch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from prodflow_core.couch.changes_stream import FeedEnded, feed_rows, gather, take_batch
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.errors import CouchError
from prodflow_core.couch.own_writes import fill_docs
from prodflow_core.waiting import first_of, unless_stopped

_log = logging.getLogger("prodflow.couch.changes")
STREAM_GATHER_S = 0.03
"""On a continuous feed, how long a batch gathers after its first change at most, until no change came for
:data:`~prodflow_core.couch.changes_stream.QUIET_S` (all ``settle_s`` instead, if set). Each write comes alone, and
handled one by one they made the services write more, smaller batches (bench_throughput: 5 ms made 469 job
writes for 3,000 jobs, a fixed 30 ms 246 to 303, against 391 reading in batches)."""


@dataclass(frozen=True)
class Change:
    """One row of ``_changes``."""

    id: str
    seq: str
    deleted: bool
    doc: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Change:
        """A change from one ``results`` row of ``_changes``."""
        seq = row["seq"]
        return cls(
            id=str(row["id"]),
            seq=seq if isinstance(seq, str) else json.dumps(seq),
            deleted=bool(row.get("deleted", False)),
            doc=row.get("doc"),
        )


ChangeHandler = Callable[[list[Change]], Awaitable[None]]


class CheckpointStore(Protocol):
    """Where a follower keeps its sequence, when not in the database's ``_local`` documents."""

    async def load(self) -> str | None:
        """The stored sequence, ``None`` if there is none."""

    async def save(self, seq: str) -> None:
        """Store ``seq``."""


class InMemoryCheckpoint:
    """A checkpoint kept only in this process: for a follower that is only a short cut (another path brings the
    same changes), so after a restart it starts again from its ``start`` and saves nothing per batch."""

    def __init__(self) -> None:
        self.seq: str | None = None

    async def load(self) -> str | None:
        """``None``: a new process starts from the follower's ``start``."""
        return None

    async def save(self, seq: str) -> None:
        """Remember ``seq`` (for inspection)."""
        self.seq = seq


class ChangesFollower:
    """Follow a database's ``_changes`` and hand each batch to ``handle``.

    The sequence after a batch is stored in ``_local/checkpoint-<consumer>`` only after ``handle`` returned,
    so a follower killed mid-batch sees that batch again on restart: delivery is at least once, and handlers
    must be idempotent. A consumer seen for the first time starts at ``start`` (``"0"`` or ``"now"``).
    ``checkpoints`` keeps the sequence elsewhere (e.g. in SQL beside what the handler writes).

    A follower that wants only some changes says which with ``keep`` (the others are never handed to
    ``handle``) and, for a server that filters ``_changes`` itself (:meth:`CouchClient.filters_changes`), with
    the same test as a Mango ``selector``: then its long poll wakes only for a change it wants. A batch with
    nothing kept stores its sequence at most every ``quiet_checkpoint_s`` (what a restart reads again is
    skipped again), so a follower of a few event types does not write a checkpoint for every batch of others.
    """

    def __init__(
        self,
        db: CouchDatabase,
        consumer: str,
        handle: ChangeHandler,
        *,
        include_docs: bool = True,
        batch_size: int = 500,
        longpoll_s: float = 20.0,
        start: str = "0",
        retry_s: float = 1.0,
        checkpoints: CheckpointStore | None = None,
        keep: Callable[[Change], bool] | None = None,
        selector: dict[str, Any] | None = None,
        quiet_checkpoint_s: float = 30.0,
        settle_s: float = 0.0,
        stream: bool = False,
    ) -> None:
        self.db = db
        self.consumer = consumer
        self.handle = handle
        self.include_docs = include_docs
        self.batch_size = batch_size
        self.longpoll_s = longpoll_s
        self.start = start
        self.retry_s = retry_s
        self.checkpoints = checkpoints
        self.keep = keep
        self.selector = selector
        self.quiet_checkpoint_s = quiet_checkpoint_s
        self.settle_s = settle_s
        """After a read that came back short, :meth:`run` waits this long before the next one (unless a
        :meth:`handled_to_now` asks): the changes of that time come in one read instead of one read each. For a
        follower whose reader can wait; each read costs CouchDB 3.5 ~2 ms of CPU, however few changes it brings."""
        self.stream = stream
        """Once caught up, read the changes on one continuous feed instead of a request per batch (see
        :mod:`prodflow_core.couch.changes_stream`); back to reading batches while a :meth:`handled_to_now` waits,
        while many own writes are to be taken back without documents, and after the feed ended or broke."""
        self.since: str | None = None
        self._checkpoint_rev: str | None = None
        self._saved_at = 0.0
        self._start_unsaved = False
        self.caught_up = asyncio.Event()
        """Set once a batch came back short: everything up to the moment of that read was handled."""
        self.behind = False
        """True while the last batch read was full: more changes were waiting beyond it."""
        self._reads = 0
        self._handled_to = 0
        """The last read that came back short and was handled: every change made before it started is handled."""
        self._wanted = 0
        self._fresh_read = asyncio.Event()
        self._advanced = asyncio.Event()

    @property
    def checkpoint_id(self) -> str:
        return f"checkpoint-{self.consumer}"

    async def load_checkpoint(self) -> str:
        """The stored sequence, or the start position for a new consumer (stored after its first poll)."""
        if self.checkpoints is not None:
            seq = await self.checkpoints.load()
            if seq is not None:
                return seq
        else:
            stored = await self.db.get_local(self.checkpoint_id)
            self._checkpoint_rev = stored.get("_rev") if stored else None
            if stored and "seq" in stored:
                return str(stored["seq"])
        self._start_unsaved = True
        return await self.db.update_seq() if self.start == "now" else self.start

    async def save_checkpoint(self, seq: str) -> None:
        """Store ``seq`` as the point to resume from."""
        if self.checkpoints is not None:
            await self.checkpoints.save(seq)
            return
        self._checkpoint_rev = await self.db.put_local(
            self.checkpoint_id, {"seq": seq, "consumer": self.consumer}, rev=self._checkpoint_rev
        )

    async def poll_once(self, *, wait: bool = True, stop: asyncio.Event | None = None) -> int:
        """Fetch and handle one batch; returns how many changes were read (kept or not: 0 means caught up).

        ``stop`` set while the batch is being fetched (a long poll) ends the call at once with 0: nothing was
        handled, so nothing is lost. A batch being handled is handled to the end.
        """
        if self.since is None:
            self.since = await self.load_checkpoint()
        self._reads += 1
        read = self._reads
        self._fresh_read.clear()
        long_poll = wait and self._handled_to >= self._wanted  # nobody waits for this read to come back
        selector = self.selector if self.selector is not None and await self.db.client.filters_changes() else None
        own = self.db.own_writes  # see prodflow_core.couch.own_writes
        own_docs = self.include_docs and own is not None and own.worth_reading_without_docs()
        fetch = self.db.changes(
            since=self.since,
            limit=self.batch_size,
            include_docs=self.include_docs and not own_docs,
            longpoll_s=self.longpoll_s if long_poll else None,
            selector=selector,
        )
        stops = [event for event in (stop, self._fresh_read if long_poll else None) if event is not None]
        batch = await unless_stopped(fetch, *stops) if stops else await fetch
        if batch is None:
            return 0
        if own_docs and batch.results and not await fill_docs(self.db, batch.results):
            batch = await self.db.changes(since=self.since, limit=self.batch_size, include_docs=True, selector=selector)
        elif own is not None and not own_docs:
            own.discard(str(row["id"]) for row in batch.results)
        await self._take([Change.from_row(row) for row in batch.results], batch.last_seq)
        self.behind = len(batch.results) >= self.batch_size
        if not self.behind:
            self.caught_up.set()
            self._handled_to = read
            self._advanced.set()
            self._advanced = asyncio.Event()
        return len(batch.results)

    async def _take(self, changes: list[Change], last_seq: str) -> None:
        """Hand what is kept of ``changes`` to the handler, store the checkpoint if due, go on after ``last_seq``."""
        kept = changes if self.keep is None else [change for change in changes if self.keep(change)]
        if kept:
            await self.handle(kept)
        # Sequences are opaque (CouchDB 3 writes one position differently in GET /db and in _changes): whether to
        # store is decided by what was handled, never by comparing them. A new consumer's start is stored too, so
        # one that started "now" resumes from there after a restart, whatever the server.
        now = asyncio.get_running_loop().time()
        if kept or self._start_unsaved or (changes and now - self._saved_at >= self.quiet_checkpoint_s):
            await self.save_checkpoint(last_seq)
            self._start_unsaved = False
            self._saved_at = now
        self.since = last_seq

    def _may_stream(self) -> bool:
        own = self.db.own_writes
        return (self.stream and self.caught_up.is_set() and not self.behind and self._handled_to >= self._wanted
                and not (self.include_docs and own is not None and own.worth_reading_without_docs()))  # fmt: skip

    async def _follow_stream(self, stop: asyncio.Event) -> bool:
        """Handle the changes of a continuous feed (:attr:`stream`) in batches of what has come, until ``stop``,
        a :meth:`handled_to_now`, many own writes to take back, or the feed's end (then ``True``: the server
        closed it, so the next read is a long poll, not another feed at once). A broken feed raises."""
        assert self.since is not None
        own = self.db.own_writes
        selector = self.selector if self.selector is not None and await self.db.client.filters_changes() else None
        self._fresh_read.clear()
        heartbeat_s = min(10.0, max(0.5, self.longpoll_s))
        async with feed_rows(self.db, since=self.since, include_docs=self.include_docs, selector=selector,
                             heartbeat_s=heartbeat_s, max_rows=2 * self.batch_size) as rows:  # fmt: skip
            while True:
                first = await unless_stopped(rows.get(), stop, self._fresh_read)
                if first is None:
                    return False
                if isinstance(first, dict) and self.settle_s:  # its reader batches: each batch costs it a checkpoint
                    await first_of(stop, self._fresh_read, timeout_s=self.settle_s)
                elif isinstance(first, dict):
                    await gather(rows, STREAM_GATHER_S, stop, self._fresh_read)
                batch, end = take_batch(rows, first, self.batch_size)
                changes = [Change.from_row(row) for row in batch]
                if changes:
                    if own is not None:
                        own.discard(change.id for change in changes)
                    await self._take(changes, changes[-1].seq)
                if isinstance(end, FeedEnded):
                    return True
                if end is not None:
                    raise end
                self.behind = len(changes) >= self.batch_size
                if self.behind or not self._may_stream():
                    return False

    async def handled_to_now(self, timeout_s: float) -> bool:
        """Wait until every change made before this call is handled (a read started after it came back short);
        a long poll in flight is ended so that read starts at once. ``False`` if that took over ``timeout_s``.

        Read-your-writes for what the handler keeps (e.g. kept counts read right after a write); needs
        :meth:`run` going.
        """
        wanted = self._reads + 1
        self._wanted = max(self._wanted, wanted)
        self._fresh_read.set()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._handled_to < wanted:
            advanced = self._advanced
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), remaining)
        return True

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Follow until ``stop`` is set (or the task is cancelled); transient errors are retried."""
        stop = stop or asyncio.Event()
        ended = False
        while not stop.is_set():
            try:
                if self._may_stream() and not ended:
                    ended = True  # should the feed fail, the next read is a batch: it gets past what broke it
                    ended = await self._follow_stream(stop)
                    continue
                ended = False
                # No long poll before the first catch-up: "nothing since the checkpoint" is known at once.
                read = await self.poll_once(wait=self.caught_up.is_set(), stop=stop)
                if self.settle_s and read < self.batch_size and self._handled_to >= self._wanted:
                    await first_of(stop, self._fresh_read, timeout_s=self.settle_s)
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, CouchError) as exc:
                _log.warning("changes of %s for %s failed: %s; retrying", self.db.name, self.consumer, exc)
                await _sleep_or_stop(stop, self.retry_s)
            except Exception:
                # The checkpoint was not advanced: the batch is handed over again after the pause.
                _log.exception("handling changes of %s for %s failed; retrying", self.db.name, self.consumer)
                await _sleep_or_stop(stop, self.retry_s)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
