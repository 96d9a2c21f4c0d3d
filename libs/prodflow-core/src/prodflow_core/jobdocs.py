"""Job documents (FORMATS.md): their ids, the job state machine, and creating the databases that hold them.

Shared by submitter (creates job documents, moves ``waiting`` → ``submitted``) and monitor (moves them on),
so both apply the same rules. Everything here is plain data and pure functions over job documents.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.compaction import view_cleanup
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.design import DesignDocument, drop_design_documents, sync_design_documents

JOB_DATABASES: Final = ("data-production", "data-processing")
"""The two databases that hold job documents (``production`` → ``data-production``)."""

DATABASE_OF_KIND: Final = {"production": "data-production", "processing": "data-processing"}

WAITING: Final = "waiting"
SUBMITTED: Final = "submitted"
RUNNING: Final = "running"
TRANSFERRING: Final = "transferring"
COMPLETED: Final = "completed"
UNSATISFIED: Final = "unsatisfied"
FAILED: Final = "failed"
PART_FAIL: Final = "partFail"
CANCELLED: Final = "cancelled"

STATUSES: Final = (WAITING, UNSATISFIED, SUBMITTED, RUNNING, TRANSFERRING, COMPLETED, FAILED, PART_FAIL, CANCELLED)
FINAL_STATUSES: Final = frozenset({COMPLETED, FAILED, CANCELLED})
"""Statuses a job never leaves on its own (``failed`` here means: attempts exhausted, or not retried)."""
ACTIVE_STATUSES: Final = frozenset({SUBMITTED, RUNNING, TRANSFERRING})
"""Statuses in which the job holds a slot at its site (what ``max_running`` counts is submitted + running)."""
RETRYABLE_STATUSES: Final = frozenset({FAILED, PART_FAIL})

TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    WAITING: frozenset({SUBMITTED, UNSATISFIED, CANCELLED}),
    UNSATISFIED: frozenset({WAITING, CANCELLED}),
    # submitted/running → waiting: the backend lost the job ("missing"), it is handed out again.
    SUBMITTED: frozenset({RUNNING, FAILED, COMPLETED, TRANSFERRING, WAITING, CANCELLED}),
    RUNNING: frozenset({TRANSFERRING, COMPLETED, FAILED, PART_FAIL, WAITING, CANCELLED}),
    TRANSFERRING: frozenset({COMPLETED, PART_FAIL, FAILED, CANCELLED}),
    PART_FAIL: frozenset({WAITING, FAILED, CANCELLED}),
    FAILED: frozenset({WAITING}),  # retry: same pass, attempt + 1
    COMPLETED: frozenset(),
    CANCELLED: frozenset(),
}
"""Allowed moves of ``status`` (FORMATS.md). ``failed → waiting`` is the retry of a failed job."""

_ID_FIELD = re.compile(r"^[^:\s]+$")


class InvalidTransition(ValueError):
    """A status change the job state machine does not allow."""

    def __init__(self, job_id: str, current: str, wanted: str) -> None:
        super().__init__(f"{job_id}: {current!r} → {wanted!r} is not allowed")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


def job_id(label: str, module: str, run: int, chunk: int, pass_number: int) -> str:
    """The deterministic ``_id`` of a job: ``job:<label>:<module>:<run>:<chunk>:p<pass>``."""
    for name, value in (("label", label), ("module", module)):
        if not _ID_FIELD.match(value):
            raise ValueError(f"{name} {value!r} may not be empty or contain ':' or spaces")
    return f"job:{label}:{module}:{run}:{chunk}:p{pass_number}"


def label_id_prefix(label: str) -> str:
    """What every job ``_id`` of ``label`` starts with (the label's documents are one ``_all_docs`` range)."""
    return f"job:{label}:"


def label_id_range(label: str) -> dict[str, str]:
    """``startkey`` and ``endkey`` of ``_all_docs`` for every job document of ``label``."""
    prefix = label_id_prefix(label)
    return {"startkey": prefix, "endkey": prefix + "\ufff0"}


def parse_job_id(doc_id: str) -> tuple[str, str, int, int, int]:
    """``(label, module, run, chunk, pass)`` of a job ``_id``; ``ValueError`` if it is not one."""
    parts = doc_id.split(":")
    if len(parts) != 6 or parts[0] != "job" or not parts[5].startswith("p"):
        raise ValueError(f"not a job id: {doc_id!r}")
    return parts[1], parts[2], int(parts[3]), int(parts[4]), int(parts[5][1:])


def exactly_entry(doc_id: str) -> tuple[str, int, int]:
    """The .exactly entry ``(module, run, pass)`` of a job ``_id``; ``ValueError`` if it is not one."""
    _, module, run, _chunk, pass_number = parse_job_id(doc_id)
    return module, run, pass_number


def job_seed(doc_id: str) -> int:
    """The job's random seed: a stable 31-bit number derived from its id (same id → same seed)."""
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def can_transition(current: str, wanted: str) -> bool:
    """True if the state machine allows ``current`` → ``wanted``."""
    return wanted in TRANSITIONS.get(current, frozenset())


def transition(doc: dict[str, Any], wanted: str, at: str, reason: str = "") -> dict[str, Any]:
    """A copy of ``doc`` moved to ``wanted``, with the move appended to ``history`` and ``updated_at`` set.

    Raises :class:`InvalidTransition` when the move is not allowed. ``failed | partFail → waiting`` (a retry)
    increments ``attempt``; ``submitted | running → waiting`` keeps it and clears ``backend`` (a submission
    that never reached the backend used no try). A job the backend *lost* did use one: the monitor then sets
    ``attempt + 1`` itself (``Move.new_attempt``), so the next try runs under a new backend name.
    """
    current = str(doc.get("status"))
    if not can_transition(current, wanted):
        raise InvalidTransition(str(doc.get("_id")), current, wanted)
    new = dict(doc)
    new["status"] = wanted
    new["updated_at"] = at
    if wanted == WAITING and current in RETRYABLE_STATUSES:
        new["attempt"] = int(doc.get("attempt", 1)) + 1
        new["backend"] = None
        new["outputs"] = []
    elif wanted == WAITING:
        new["backend"] = None
    new["history"] = [*doc.get("history", []), history_entry(new, wanted, at, reason)]
    return new


def history_entry(doc: Mapping[str, Any], status: str, at: str, reason: str) -> dict[str, Any]:
    """The ``history`` entry of a move to ``status``: provenance reads each attempt's backend id, exit code and
    times from these entries, so each names its attempt and, once the backend gave one, the backend id."""
    entry: dict[str, Any] = {"status": status, "at": at, "reason": reason, "attempt": int(doc.get("attempt", 1))}
    backend = doc.get("backend")
    if isinstance(backend, Mapping) and backend.get("id"):
        entry["backend_id"] = str(backend["id"])
        if backend.get("exit_code") is not None:
            entry["exit_code"] = backend["exit_code"]
    return entry


def backend_job_name(doc: Mapping[str, Any]) -> str:
    """The name a job carries at its backend: its id plus attempt, unique per try, reused on a re-send."""
    return f"{doc['_id']}:a{int(doc.get('attempt', 1))}"


CLAIMED = "SUBMITTING"
"""``backend.state`` of a job the submitter claimed, until a state seen at its backend replaces it. With a backend
whose ids are the jobs' names (``Backend.names_are_ids``) the claim already carries the id, so the backend may not
have the job yet: the submitter's reconcile asks for it by name, and the monitor does not count it lost."""


def unconfirmed(doc: Mapping[str, Any]) -> bool:
    """True for a ``submitted`` job its backend may not have: no backend id yet, or still :data:`CLAIMED`."""
    if doc.get("status") != SUBMITTED:
        return False
    backend = doc.get("backend")
    return not isinstance(backend, Mapping) or not backend.get("id") or backend.get("state") == CLAIMED


def job_output_dir(output_root: Path, doc_id: str) -> Path:
    """Where a job writes its outputs below a site's ``output_root`` (the monitor copies them from there)."""
    label, module, run, chunk, pass_number = parse_job_id(doc_id)
    return output_root / label / module / f"{run}_{chunk}_p{pass_number}"


RETIRED_JOB_DESIGNS: Final = ("_design/jobs", "_design/submitter", "_design/monitor")
"""Design documents earlier versions kept in the job databases, and nothing reads any more: what took jobs of a
label, campaign or (module, run, pass) from them (operations, .exactly, the grabber) reads the kept counts'
ledger (:func:`prodflow_core.counts.label_jobs`), and counts and listings are kept (:mod:`prodflow_core.counts`).
The one view left is the monitor's check of the kept counts (``_design/monitor_verify``), built only when asked.
"""


async def ensure_job_databases(
    client: CouchClient,
    designs: Sequence[DesignDocument] = (),
    *,
    prefix: str = "",
    shards: int | None = None,
) -> dict[str, CouchDatabase]:
    """Create both job databases if missing, sync ``designs`` into each and drop :data:`RETIRED_JOB_DESIGNS`.

    Returns them by their FORMATS.md name; ``prefix`` is put before the real database names (tests, or several
    deployments sharing one CouchDB); ``shards`` is CouchDB 3's ``q`` of a database created here.
    """
    databases: dict[str, CouchDatabase] = {}
    for name in JOB_DATABASES:
        databases[name] = db = client.db(prefix + name)
        await prepare_job_database(db, designs, shards=shards)
    return databases


async def prepare_job_database(db: CouchDatabase, designs: Sequence[DesignDocument] = (), *,
                               shards: int | None = None) -> None:  # fmt: skip
    """Create ``db`` if missing, sync ``designs`` into it and drop :data:`RETIRED_JOB_DESIGNS` (then a view
    cleanup, if any design document changed or went, removes the index files no longer used)."""
    await db.ensure(shards=shards)
    written = await sync_design_documents(db, list(designs))
    if await drop_design_documents(db, RETIRED_JOB_DESIGNS) or written:
        await view_cleanup(db)
