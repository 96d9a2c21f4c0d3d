"""Writing decided moves to job documents: ``_bulk_docs`` on the revisions held, a 409 re-read and decided again,
never an overwrite."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.jobdocs import InvalidTransition

from prodflow_monitor.followed import FollowedDocs
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.report import CycleReport

_log = logging.getLogger("prodflow.monitor.loop")

Doc = dict[str, Any]
WRITE_ROUNDS = 10


class JobWrites:
    """Applies a change to job documents of the databases a monitor replica follows; ``track`` hears of every
    document written, and of every one the change left alone after a fresh read."""

    def __init__(
        self,
        dbs: Mapping[str, CouchDatabase],
        followed: Mapping[str, FollowedDocs],
        metrics: MonitorMetrics,
        track: Callable[[str, Doc], object],
    ) -> None:
        self.dbs = dbs
        self.followed = followed
        self.metrics = metrics
        self._track = track

    async def write(
        self, database: str, ids: list[str], change: Callable[[Doc], Doc | None], report: CycleReport
    ) -> list[Doc]:
        """Apply ``change`` to the documents ``ids`` with ``_bulk_docs``: first to the revisions followed, then, for
        those that conflicted or that ``change`` left alone, to the ones re-read (and again while they conflict).
        Never overwrites; a revision held that is older than the active set's cannot stall a job."""
        db = self.dbs[database]
        followed = self.followed[database]
        written: list[Doc] = []
        pending = ids
        began = time.monotonic()
        for round_number in range(WRITE_ROUNDS):
            if not pending:
                break
            current = await (followed.get_many(pending) if round_number == 0 else followed.read(pending))
            new_docs: list[Doc] = []
            again: list[str] = []
            for doc_id in pending:
                doc = current.get(doc_id)
                if doc is None:
                    continue
                try:
                    new = change(doc)
                except InvalidTransition as exc:
                    if round_number > 0:
                        _log.warning("%s", exc)
                    new = None
                if new is None and round_number == 0:
                    again.append(doc_id)  # nothing to do on the revision held: decided again on a fresh read
                elif new is None:
                    self._track(database, doc)
                else:
                    new_docs.append(new)
            pending = again
            for new, result in zip(new_docs, await db.bulk_docs(new_docs), strict=True):
                if result.ok:
                    written.append(new)
                    followed.note(new)
                    self._count_moves(database, new, report)
                    self._track(database, new)
                elif result.error == "conflict":
                    followed.drop(str(new["_id"]))
                    self.metrics.conflicts.labels(database).inc()
                    pending.append(str(new["_id"]))
                else:
                    _log.warning("writing %s failed: %s %s", new["_id"], result.error, result.reason)
        if pending:
            _log.warning("%d jobs still conflicting after %d rounds; next cycle", len(pending), WRITE_ROUNDS)
        report.write_s += time.monotonic() - began
        return written

    def _count_moves(self, database: str, doc: Doc, report: CycleReport) -> None:
        status = str(doc.get("status"))
        report.moved += 1
        report.moves[status] = report.moves.get(status, 0) + 1
        self.metrics.moves.labels(database, status).inc()
