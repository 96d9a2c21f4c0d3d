"""Listing job documents page by page across both job databases: the ledger picks the ids, CouchDB the documents.

The kept counts' ledger (:mod:`prodflow_core.counts`) holds every followed job's label, experiment, module,
status and site, with an index for each listing: label + status, label (+ module), experiment (+ status), and
experiment + site (+ status). A page is one keyset read of such an index (its keys end in the doc id, so it
resumes after the last key shown: no offset, no scan) and one ``_all_docs?keys=`` read of those documents. No
CouchDB view is built for listings, so new job documents cost no index time here.

A caller sees only its experiments' jobs, and the ledger never hands it another's: a label belongs to one
experiment (checked by the route before listing), and every other range is fixed to one of the caller's
experiments, so each of them is one key range of an index that starts with the experiment.

The ledger follows the ``_changes`` feed by one batch. A document whose status (or any filtered field) changed
after its row was written is shown only if it still matches the filters as it is now: a listing never shows a
job that contradicts what was asked, and a job that just moved into the asked status appears once the ledger has
counted the move. The filters the ledger does not hold (``run``, ``pass``) are applied to the documents.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.counts import LedgerRange, ledger_keys
from sqlalchemy.ext.asyncio import AsyncEngine

MAX_ROUNDS = 20
"""Reads of one range before a page that stays short (documents filtered out) is returned with its cursor."""


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


def label_range(selection: JobFilter) -> LedgerRange:
    """The ledger range of a listing by label (``selection.label`` set)."""
    label = str(selection.label)
    prefix = None
    if selection.module is not None and selection.run is not None:
        prefix = f"job:{label}:{selection.module}:{selection.run}:"
    module = () if selection.module is None else (("module", selection.module),)
    if selection.status is not None:
        return LedgerRange((("label", label), ("status", selection.status)), also=module, id_prefix=prefix)
    if selection.module is None:
        return LedgerRange((("label", label),), ("module", "doc_id"))
    return LedgerRange((("label", label), *module), id_prefix=prefix)


def experiment_range(selection: JobFilter, experiment: str) -> LedgerRange:
    """The ledger range of a listing not by label, within one experiment."""
    fixed: tuple[tuple[str, str], ...] = (("experiment", experiment),)
    if selection.site is not None:
        fixed += (("site", selection.site),)
    module = () if selection.module is None else (("module", selection.module),)
    if selection.status is not None:
        return LedgerRange((*fixed, ("status", selection.status)), also=module)
    return LedgerRange(fixed, ("status", "doc_id"), also=module)


def ranges_for(selection: JobFilter, experiments: Sequence[str]) -> list[LedgerRange]:
    """The key ranges to read, in order: one for a label, else one per experiment the caller may see."""
    if selection.label is not None:
        return [label_range(selection)]
    return [experiment_range(selection, experiment) for experiment in sorted(experiments)]


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


def _range_of(ranges: Sequence[LedgerRange], key: Any) -> int:
    """Which of ``ranges`` holds ``key`` (a cursor's last key); ``ValueError`` if none does."""
    for position, part in enumerate(ranges):
        if part.holds(key):
            return position
    raise ValueError("cursor does not belong to this listing")


@dataclass
class Page:
    """One page of jobs and the cursor of the next (``None`` at the end)."""

    items: list[dict[str, Any]]
    next: str | None


@dataclass(frozen=True)
class _Round:
    keys: list[list[str]]
    docs: list[dict[str, Any] | None]
    """``docs[i]``: the document of ``keys[i]`` if the listing shows it."""
    more: bool
    """True if the range goes on after the last key."""


@dataclass(frozen=True)
class _Listing:
    """What one listing reads (the ledger's SQL) and which documents it shows."""

    engine: AsyncEngine
    selection: JobFilter
    visible: Callable[[Mapping[str, Any]], bool]

    async def read(self, db: CouchDatabase, part: LedgerRange, after: list[str] | None, limit: int) -> _Round:
        """Up to ``limit`` keys of ``part`` after ``after``, and the documents among them this listing shows."""
        keys = await ledger_keys(self.engine, db.name, part, after, limit + 1)
        docs = await db.get_many([key[-1] for key in keys[:limit]])
        shown = []
        for key in keys[:limit]:
            doc = docs.get(key[-1])
            shown.append(doc if doc and self.selection.matches(doc) and self.visible(doc) else None)
        return _Round(keys[:limit], shown, more=len(keys) > limit)


async def list_jobs(
    engine: AsyncEngine,
    dbs: Sequence[CouchDatabase],
    selection: JobFilter,
    experiments: Sequence[str],
    *,
    limit: int,
    cursor: str | None = None,
    visible: Callable[[Mapping[str, Any]], bool] = lambda doc: True,
) -> Page:
    """Up to ``limit`` jobs matching ``selection`` (and ``visible``), in index order: database by database, and
    in each, experiment by experiment of ``experiments`` (the caller's) unless a label is asked for.

    ``engine`` holds the kept counts' ledger; ``ValueError`` if ``cursor`` is not one of this listing's.
    """
    listing = _Listing(engine, selection, visible)
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
        for number, part in enumerate(ranges[first_range:], start=first_range):
            for _ in range(MAX_ROUNDS):
                got = await listing.read(db, part, after, limit - len(items))
                items += [{**doc, "database": db.name} for doc in got.docs if doc is not None]
                after = got.keys[-1] if got.keys else after
                if len(items) == limit:
                    last = not got.more and position == len(dbs) - 1 and number == len(ranges) - 1
                    return Page(items, None if last else encode_cursor(db.name, after))
                if not got.more:
                    break
            else:
                return Page(items, encode_cursor(db.name, after))  # sparse matches: let the client go on
            after = None
        first_range = 0
    return Page(items, None)
