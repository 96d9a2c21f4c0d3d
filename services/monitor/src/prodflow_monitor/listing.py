"""Listing job documents page by page across both job databases: the ledger picks the ids, CouchDB the documents.

The kept counts' ledger (:mod:`prodflow_core.counts`) holds every followed job's label, experiment, module,
status and site, with an index for each listing: label + status, label (+ module), experiment (+ status), and
experiment + site (+ status). A page is one keyset read of such an index (its keys end in the doc id, so it
resumes after the last key shown: no offset, no scan) and the documents of those ids: as the monitor last followed
them (:mod:`prodflow_monitor.followed`), the rest in one ``_all_docs?keys=`` read. No CouchDB view is built for
listings, so new job documents cost no index time here.

A caller sees only its experiments' jobs, and the ledger never hands it another's: every range is fixed to one of
the caller's experiments (for a label, those of the caller's experiments that hold it), and every listing index
starts with the experiment, so a range is one key range of the caller's own rows and no other experiment's row
is ever read. A page ends at a *position* (the database and the last key shown); the route seals it into an
opaque cursor (:mod:`prodflow_core.cursors`) bound to the query and the caller.

The ledger follows the ``_changes`` feed by one batch. A document whose status (or any filtered field) changed
after its row was written is shown only if it still matches the filters as it is now: a listing never shows a
job that contradicts what was asked, and a job that just moved into the asked status appears once the ledger has
counted the move. The filters the ledger does not hold (``run``, ``pass``) are applied to the documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prodflow_core.counts import LedgerRange, ledger_keys
from sqlalchemy.ext.asyncio import AsyncEngine

MAX_ROUNDS = 20
"""Reads of one range before a page that stays short (documents filtered out) is returned with its cursor."""

Position = tuple[str, list[str]]
"""Where a page ended: the database and the last key shown (what a cursor seals)."""

MissingDocs = Callable[[str, list[str]], Awaitable[dict[str, dict[str, Any]]]]
"""Where the documents a database no longer holds are read from: ``(database, ids) -> {id: doc}`` (the archive)."""


async def _none_missing(database: str, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
    del database, doc_ids
    return {}


HIDDEN_FIELDS = frozenset({"history", "_rev"})
"""What a listing does not show of a job document (``GET /api/jobs/{id}`` does)."""


def listing_form(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as a listing shows it: without :data:`HIDDEN_FIELDS`."""
    return {name: value for name, value in doc.items() if name not in HIDDEN_FIELDS}


class JobSource(Protocol):
    """Where a listing reads a database's job documents by id, in their listing form
    (:class:`prodflow_monitor.followed.ListingView`); a listing never changes what it gets."""

    @property
    def name(self) -> str:
        """The database's name."""
        ...

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The existing documents among ``doc_ids``, by id."""
        ...


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


def label_range(selection: JobFilter, experiment: str) -> LedgerRange:
    """The ledger range of a listing by label (``selection.label`` set), within one experiment."""
    label = str(selection.label)
    prefix = None
    if selection.module is not None and selection.run is not None:
        prefix = f"job:{label}:{selection.module}:{selection.run}:"
    fixed = (("experiment", experiment), ("label", label))
    module = () if selection.module is None else (("module", selection.module),)
    if selection.status is not None:
        return LedgerRange((*fixed, ("status", selection.status)), also=module, id_prefix=prefix)
    if selection.module is None:
        return LedgerRange(fixed, ("module", "doc_id"))
    return LedgerRange((*fixed, *module), id_prefix=prefix)


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
    """The key ranges to read, in order: one per experiment of ``experiments`` (those the caller may see; for a
    label, those of them that hold it)."""
    make = experiment_range if selection.label is None else label_range
    return [make(selection, experiment) for experiment in sorted(experiments)]


def _start_of(position: object, names: Sequence[str], ranges: Sequence[LedgerRange]) -> tuple[int, int, list[str]]:
    """``(database, range, key)`` positions a page resumes after; ``ValueError`` if not one of this listing's."""
    if not (isinstance(position, list | tuple) and len(position) == 2 and position[0] in names):
        raise ValueError("cursor does not belong to this listing")
    database, key = position
    for number, part in enumerate(ranges):
        if part.holds(key):
            return names.index(database), number, key
    raise ValueError("cursor does not belong to this listing")


@dataclass
class Page:
    """One page of jobs and where the next starts (``None`` at the end)."""

    items: list[dict[str, Any]]
    next: Position | None


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
    missing: MissingDocs = _none_missing

    async def read(self, db: JobSource, part: LedgerRange, after: list[str] | None, limit: int) -> _Round:
        """Up to ``limit`` keys of ``part`` after ``after``, and the documents among them this listing shows."""
        keys = await ledger_keys(self.engine, db.name, part, after, limit + 1)
        docs = await db.get_many([key[-1] for key in keys[:limit]])
        if absent := [key[-1] for key in keys[:limit] if key[-1] not in docs]:
            archived = await self.missing(db.name, absent)
            docs.update({doc_id: listing_form(doc) for doc_id, doc in archived.items()})
        shown = []
        for key in keys[:limit]:
            doc = docs.get(key[-1])
            shown.append(doc if doc and self.selection.matches(doc) and self.visible(doc) else None)
        return _Round(keys[:limit], shown, more=len(keys) > limit)


async def list_jobs(
    engine: AsyncEngine,
    dbs: Sequence[JobSource],
    selection: JobFilter,
    experiments: Sequence[str],
    *,
    limit: int,
    after: object = None,
    visible: Callable[[Mapping[str, Any]], bool] = lambda doc: True,
    missing: MissingDocs = _none_missing,
) -> Page:
    """Up to ``limit`` jobs matching ``selection`` (and ``visible``), in index order: database by database, and
    in each, experiment by experiment of ``experiments`` (those the caller may see; see :func:`ranges_for`).

    ``engine`` holds the kept counts' ledger; ``after`` is the :data:`Position` a page before ended at (``None``:
    from the start), ``ValueError`` if it is not one of this listing's. Documents a database no longer holds
    (archived) are asked of ``missing``.
    """
    listing = _Listing(engine, selection, visible, missing)
    ranges = ranges_for(selection, experiments)
    names = [db.name for db in dbs]
    first_db, first_range, key = 0, 0, None
    if after is not None:
        first_db, first_range, key = _start_of(after, names, ranges)
    items: list[dict[str, Any]] = []
    for position in range(first_db, len(dbs)):
        db = dbs[position]
        for number, part in enumerate(ranges[first_range:], start=first_range):
            for _ in range(MAX_ROUNDS):
                got = await listing.read(db, part, key, limit - len(items))
                items += [{**doc, "database": db.name} for doc in got.docs if doc is not None]
                key = got.keys[-1] if got.keys else key
                if len(items) == limit:
                    last = not got.more and position == len(dbs) - 1 and number == len(ranges) - 1
                    return Page(items, None if last or key is None else (db.name, key))
                if not got.more:
                    break
            else:
                if key is not None:
                    return Page(items, (db.name, key))  # sparse matches: let the client go on
            key = None
        first_range = 0
    return Page(items, None)
