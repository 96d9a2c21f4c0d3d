"""Sizes, compaction and view cleanup of a database and its view indexes.

CouchDB 3 reports ``sizes`` (``file``: bytes on disk, ``active``: bytes of live data) and ``compact_running`` in
``GET /db`` and in ``GET /db/_design/x/_info``, and compacts in the background (``202``). PouchDB Server differs:
``GET /db`` has no ``sizes`` and no ``compact_running`` (on leveldb only ``disk_size``, the size of the store's
folder; in memory nothing), ``_design/x/_info`` answers ``"view_index": "Not implemented."``, ``_compact/x`` is not
routed (a 400 about multipart documents), and ``_compact`` answers only when the compaction has finished, keeping
the sequence it compacted up to in ``_local/compaction``. A figure a server does not report is ``None`` here, never 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.errors import DocumentNotFound

COMPACT_TIMEOUT_S = 3600.0
"""How long a ``_compact`` request may take: PouchDB Server answers it only when the compaction has finished."""


@dataclass(frozen=True)
class StoreSizes:
    """Sizes of one database or view index file as its server reports them (``None``: not reported)."""

    file: int | None
    """Bytes the file takes on disk (CouchDB ``sizes.file``; PouchDB on leveldb ``disk_size``)."""
    active: int | None
    """Bytes of live data in it (CouchDB ``sizes.active``); what compaction would leave."""
    compact_running: bool | None
    """Whether the server is compacting it now; ``None`` where the server does not say (PouchDB Server)."""

    @property
    def fragmentation(self) -> float | None:
        """``1 - active / file``: the share of the file a compaction would free; ``None`` when unknown."""
        if self.file is None or self.active is None or self.file <= 0:
            return None
        return max(0.0, 1.0 - self.active / self.file)


@dataclass(frozen=True)
class StoreReading:
    """The sizes of one store: a database (``design`` is ``None``) or the view index of one design document."""

    database: str
    design: str | None
    sizes: StoreSizes

    @property
    def target(self) -> str:
        """What ``_compact`` is asked for: ``database``, or ``_design/<name>`` for a view index."""
        return "database" if self.design is None else f"_design/{self.design}"


def _bytes(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def store_sizes(info: Mapping[str, Any]) -> StoreSizes:
    """The sizes in a ``GET /db`` answer or in the ``view_index`` of a ``_design/x/_info`` answer.

    ``disk_size``/``data_size`` are the fields of CouchDB before 2.0 (and PouchDB's ``disk_size``), read where
    ``sizes`` is absent.
    """
    sizes = info.get("sizes")
    sizes = sizes if isinstance(sizes, Mapping) else {}
    running = info.get("compact_running")
    return StoreSizes(
        file=_bytes(sizes.get("file", info.get("disk_size"))),
        active=_bytes(sizes.get("active", info.get("data_size"))),
        compact_running=running if isinstance(running, bool) else None,
    )


async def database_sizes(db: CouchDatabase) -> StoreSizes:
    """Sizes of ``db`` itself (``GET /db``)."""
    return store_sizes(await db.info())


async def design_names(db: CouchDatabase) -> list[str]:
    """Names of the design documents in ``db`` (``x`` of ``_design/x``), in one ``_all_docs`` range request."""
    rows = (await db.all_docs(startkey="_design/", endkey="_design0")).rows
    return [str(row["id"]).removeprefix("_design/") for row in rows]


async def index_sizes(db: CouchDatabase, ddoc: str) -> StoreSizes | None:
    """Sizes of the view index of ``_design/ddoc`` (``_info``); ``None`` where the server has no such figures
    (PouchDB Server answers ``"Not implemented."``) or the design document is gone."""
    try:
        answer = await db.client.request("GET", f"{_base(db)}/_design/{quote(ddoc, safe='')}/_info")
    except DocumentNotFound:
        return None
    index = answer.get("view_index") if isinstance(answer, Mapping) else None
    return store_sizes(index) if isinstance(index, Mapping) else None


async def read_stores(db: CouchDatabase) -> list[StoreReading]:
    """The sizes of ``db`` and of each view index its server reports: 2 + (design documents) requests, the index
    reads at once."""
    sizes = await database_sizes(db)
    names = await design_names(db)
    indexes = await asyncio.gather(*(index_sizes(db, name) for name in names))
    readings = [StoreReading(db.name, None, sizes)]
    readings += [StoreReading(db.name, name, found) for name, found in zip(names, indexes, strict=True) if found]
    return readings


async def compact(db: CouchDatabase, *, timeout_s: float = COMPACT_TIMEOUT_S) -> None:
    """Ask for a compaction of ``db`` (CouchDB starts it and answers 202; PouchDB Server answers when done)."""
    await db.client.request("POST", f"{_base(db)}/_compact", json_body={}, timeout=timeout_s)


async def compact_view(db: CouchDatabase, ddoc: str) -> None:
    """Ask CouchDB to compact the view index of ``_design/ddoc`` (PouchDB Server has no such route)."""
    await db.client.request("POST", f"{_base(db)}/_compact/{quote(ddoc, safe='')}", json_body={})


async def view_cleanup(db: CouchDatabase) -> None:
    """Delete the index files no current design document uses (after design documents changed or went)."""
    await db.client.request("POST", f"{_base(db)}/_view_cleanup", json_body={})


async def compacted_seq(db: CouchDatabase) -> str | None:
    """The sequence PouchDB Server's last compaction of ``db`` reached (its ``_local/compaction``), as text;
    ``None`` if it never compacted ``db`` or the server keeps no such record (CouchDB)."""
    record = await db.get_local("compaction")
    if record is None or record.get("last_seq") is None:
        return None
    seq = record["last_seq"]
    return seq if isinstance(seq, str) else json.dumps(seq)


def _base(db: CouchDatabase) -> str:
    return quote(db.name, safe="")


__all__ = [
    "StoreReading",
    "StoreSizes",
    "compact",
    "compact_view",
    "compacted_seq",
    "database_sizes",
    "design_names",
    "index_sizes",
    "read_stores",
    "store_sizes",
    "view_cleanup",
]
