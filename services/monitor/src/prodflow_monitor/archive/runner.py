"""Running archivals and restores in the background of one monitor replica, at most one per label.

The work's state is in SQL (:mod:`~prodflow_monitor.archive.tables`): a replica killed midway leaves the label in
the state it reached, and asking again (on any replica) resumes from there. A record that moved in the last
:data:`BUSY_S` seconds is taken as being worked on by another replica and is not started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prodflow_core.counts import label_sites
from prodflow_core.events import utc_now

from prodflow_monitor.archive.operation import ArchiveStores
from prodflow_monitor.archive.tables import ARCHIVED, RESTORED, ArchiveRecord, set_archive
from prodflow_monitor.sites import SiteDirectory

_log = logging.getLogger("prodflow.monitor.archive")
BUSY_S = 60.0


def _age_s(stamp: str) -> float:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - then).total_seconds()


class Archivist:
    """This replica's archival and restore tasks (see the module docstring)."""

    def __init__(self, stores: ArchiveStores, sites: SiteDirectory) -> None:
        self.stores = stores
        self.sites = sites
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def running(self, label: str) -> bool:
        """True if this replica works on ``label`` now."""
        task = self._tasks.get(label)
        return task is not None and not task.done()

    def busy(self, record: ArchiveRecord) -> bool:
        """True if some replica seems to work on ``record`` now (this one, or another that updated it lately)."""
        if self.running(record.label):
            return True
        done = record.state in (ARCHIVED, RESTORED)
        return not done and not record.error and _age_s(record.updated_at) < BUSY_S

    def start(self, label: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` for ``label`` in the background; a failure is written into the label's record."""

        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.exception("archive work on %s failed", label)
                await set_archive(self.stores.engine, label, error=f"{type(exc).__name__}: {exc}", updated_at=utc_now())

        self._tasks[label] = asyncio.create_task(run(), name=f"archive-{label}")

    async def storage_element(self, label: str) -> str | None:
        """The storage element of the first of the label's sites (by name) that has one."""
        for name in await label_sites(self.stores.engine, label):
            site = await self.sites.site(name)
            if site is not None and site.storage_element:
                return site.storage_element
        return None

    async def aclose(self) -> None:
        """Stop the tasks (their labels stay in the state reached, to be resumed)."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
