"""Listing job documents page by page across both job databases, resuming at a view key.

The most selective index serves each query (label + status, label [+ module [+ run]] by id prefix, site,
status, or every job); the filters it does not cover are applied to the documents it returns. Every index's
keys are unique (they end in the doc id), so a page resumes at the last key it showed: no ``skip``, no scan.

A caller sees only its experiments' jobs, and the index never hands it another's: a label belongs to one
experiment (checked by the route before listing), and every other index's key starts with the experiment, so
each of the caller's experiments is one key range.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.couch import CouchDatabase

from prodflow_monitor.views import HIGH

ID_HIGH = "\ufff0"
MAX_ROUNDS = 20


@dataclass(frozen=True)
class JobFilter:
    """What ``GET /api/jobs`` selects on (``None`` = any)."""

    label: str | None = None
    status: str | None = None
    module: str | None = None
    run: int | None = None
    pass_number: int | None = None
    site: str | None = None

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """True if ``doc`` is a job that passes every filter."""
        wanted = {
            "label": self.label,
            "status": self.status,
            "module": self.module,
            "run": self.run,
            "pass": self.pass_number,
            "site": self.site,
        }
        return doc.get("type") == "job" and all(v is None or doc.get(k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class IndexRange:
    """Which index serves a query and its key range (``view`` ``None`` = ``_all_docs``)."""

    view: str | None
    start: Any
    end: Any


def index_for(selection: JobFilter, experiment: str | None = None) -> IndexRange:
    """The most selective index for ``selection``; ``experiment`` scopes the queries that are not by label."""
    if selection.label is not None and selection.status is not None:
        return IndexRange(
            "list_by_label_status", [selection.label, selection.status], [selection.label, selection.status, HIGH]
        )
    if selection.label is not None:
        prefix = f"job:{selection.label}:"
        if selection.module is not None:
            prefix += f"{selection.module}:"
            if selection.run is not None:
                prefix += f"{selection.run}:"
        return IndexRange(None, prefix, prefix + ID_HIGH)
    if selection.site is not None:
        start = [experiment, selection.site]
        if selection.status is not None:
            start.append(selection.status)
        return IndexRange("list_by_site_status", start, [*start, HIGH])
    start = [experiment] if selection.status is None else [experiment, selection.status]
    return IndexRange("list_by_status", start, [*start, HIGH])


def ranges_for(selection: JobFilter, experiments: Sequence[str]) -> list[IndexRange]:
    """The key ranges to read, in order: one for a label, else one per experiment the caller may see."""
    if selection.label is not None:
        return [index_for(selection)]
    return [index_for(selection, experiment) for experiment in sorted(experiments)]


def encode_cursor(database: str, key: Any) -> str:
    """An opaque cursor: the database and the last key shown."""
    return base64.urlsafe_b64encode(json.dumps({"db": database, "key": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, Any]:
    """``(database, last key)`` of a cursor; ``ValueError`` if it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(data["db"]), data["key"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValueError("cursor is not valid") from exc


def _range_of(ranges: Sequence[IndexRange], key: Any) -> int:
    """Which of ``ranges`` holds ``key`` (a cursor's last key); ``ValueError`` if none does."""
    for position, index in enumerate(ranges):
        low, high = (index.start, index.end) if index.view is None else (index.start[:1], index.end[:1])
        if (index.view is None and isinstance(key, str) and low <= key <= high) or (
            index.view is not None and isinstance(key, list) and key[:1] == low
        ):
            return position
    raise ValueError("cursor does not belong to this listing")


async def _rows(db: CouchDatabase, index: IndexRange, after: Any, limit: int) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"include_docs": True, "limit": limit, "endkey": index.end}
    if after is None:
        params["startkey"] = index.start
    else:
        params.update(startkey=after, skip=1)
    if index.view is None:
        return (await db.all_docs(**params)).rows
    return (await db.view("monitor", index.view, reduce=False, **params)).rows


@dataclass
class Page:
    """One page of jobs and the cursor of the next (``None`` at the end)."""

    items: list[dict[str, Any]]
    next: str | None


async def list_jobs(
    dbs: Sequence[CouchDatabase],
    selection: JobFilter,
    experiments: Sequence[str],
    *,
    limit: int,
    cursor: str | None = None,
    visible: Callable[[Mapping[str, Any]], bool] = lambda doc: True,
) -> Page:
    """Up to ``limit`` jobs matching ``selection`` (and ``visible``), in index order: database by database, and
    in each, experiment by experiment of ``experiments`` (the caller's) unless a label is asked for."""
    ranges = ranges_for(selection, experiments)
    names = [db.name for db in dbs]
    first_db, first_range, after = 0, 0, None
    if cursor is not None:
        database, after = decode_cursor(cursor)
        if database not in names:
            raise ValueError("cursor names an unknown database")
        first_db, first_range = names.index(database), _range_of(ranges, after)
    items: list[dict[str, Any]] = []
    for position in range(first_db, len(dbs)):
        db = dbs[position]
        for index in ranges[first_range:]:
            for _ in range(MAX_ROUNDS):
                rows = await _rows(db, index, after, limit + 1)
                for row in rows:
                    doc = row.get("doc")
                    if doc and selection.matches(doc) and visible(doc):
                        items.append({**doc, "database": db.name})
                    if len(items) == limit:
                        return Page(items, encode_cursor(db.name, row["key"]))
                    after = row["key"]
                if len(rows) <= limit:
                    break
            else:
                return Page(items, encode_cursor(db.name, after))  # sparse matches: let the client go on
            after = None
        first_range = 0
    return Page(items, None)
