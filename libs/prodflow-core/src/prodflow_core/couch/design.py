"""Design documents kept in code and synced idempotently at start-up."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.errors import DocumentConflict

_log = logging.getLogger("prodflow.couch.design")


@dataclass(frozen=True)
class View:
    """A JavaScript map function and an optional reduce (``_count``, ``_sum``, ``_stats`` or JS)."""

    map: str
    reduce: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"map": self.map}
        if self.reduce:
            out["reduce"] = self.reduce
        return out


@dataclass(frozen=True)
class DesignDocument:
    """``_design/<name>`` with its views."""

    name: str
    views: dict[str, View] = field(default_factory=dict)
    autoupdate: bool = True
    """False: CouchDB 3's background indexer leaves these views alone; they are built only when queried."""

    @property
    def id(self) -> str:
        return f"_design/{self.name}"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "_id": self.id,
            "language": "javascript",
            "views": {name: view.as_json() for name, view in sorted(self.views.items())},
        }
        if not self.autoupdate:
            body["autoupdate"] = False
        return body


def _same(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return bool(
        stored.get("views") == wanted["views"]
        and stored.get("language", "javascript") == wanted["language"]
        and stored.get("autoupdate", True) == wanted.get("autoupdate", True)
    )


async def sync_design_documents(db: CouchDatabase, documents: list[DesignDocument]) -> list[str]:
    """Write each design document whose views differ from the stored one; returns the ids written.

    Unchanged documents are not rewritten, so their indexes are kept. Safe to run from several replicas.
    """
    written: list[str] = []
    for ddoc in documents:
        wanted = ddoc.body()
        for _ in range(5):
            stored = await db.get_or_none(ddoc.id)
            if stored is not None and _same(stored, wanted):
                break
            doc = dict(wanted)
            if stored is not None:
                doc["_rev"] = stored["_rev"]
            try:
                await db.put(doc)
            except DocumentConflict:
                continue
            written.append(ddoc.id)
            _log.info("design document %s written in %s", ddoc.id, db.name)
            break
    return written


async def drop_design_documents(db: CouchDatabase, design_ids: Sequence[str]) -> list[str]:
    """Delete those of ``design_ids`` still in ``db``, so the server builds nothing more for them (a view
    cleanup afterwards removes their index files); returns the ids deleted (safe to run from several replicas).
    """
    dropped = []
    for design_id in design_ids:
        stored = await db.get_or_none(design_id)
        if stored is None:
            continue
        try:
            await db.delete(design_id, str(stored["_rev"]))
        except DocumentConflict:
            continue  # another replica changed or deleted it first
        dropped.append(design_id)
        _log.info("design document %s dropped from %s", design_id, db.name)
    return dropped
