"""The grabber: a label's output files as a manifest, and the label's jobs as an .exactly file.

Both take the label's jobs from the kept counts' ledger (job ids say module, run and pass; the ledger says the
status) and the manifest reads those documents by id for their outputs: no CouchDB view, so no wait for an
index build, and the cost is that of the label's own jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.counts import label_jobs
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import exactly_entry, parse_job_id
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_monitor.followed import FollowedDocs

MANIFEST_FORMAT = "prodflow.manifest/1"
_DOCS_PER_READ = 500


@dataclass(frozen=True)
class Selection:
    """Which jobs of a label to take (``None`` = any)."""

    module: str | None = None
    run: int | None = None
    pass_number: int | None = None
    status: str | None = None

    def matches(self, key: Sequence[Any], status: str | None) -> bool:
        """True if a job of key ``[label, module, run, pass]`` in ``status`` is selected."""
        _, module, run, pass_number = key
        return (
            (self.module is None or module == self.module)
            and (self.run is None or run == self.run)
            and (self.pass_number is None or pass_number == self.pass_number)
            and (self.status is None or status == self.status)
        )

    def takes(self, doc_id: str, status: str) -> bool:
        """True if the job ``doc_id`` in ``status`` is selected."""
        label, module, run, _chunk, pass_number = parse_job_id(doc_id)
        return self.matches([label, module, run, pass_number], status)


async def selected_jobs(counts: AsyncEngine, database: str, label: str, selection: Selection) -> list[str]:
    """Ids of the selected jobs of ``label`` in ``database``, sorted (from the kept counts' ledger)."""
    statuses = None if selection.status is None else [selection.status]
    return [i for i, status in await label_jobs(counts, database, label, statuses) if selection.takes(i, status)]


async def exactly_lines(counts: AsyncEngine, databases: Sequence[str], label: str, selection: Selection) -> list[str]:
    """The .exactly lines of the selected jobs: ``module run pass``, one per (module, run, pass), sorted."""
    entries: set[tuple[str, int, int]] = set()
    for database in databases:
        entries.update(exactly_entry(doc_id) for doc_id in await selected_jobs(counts, database, label, selection))
    return [f"{module} {run} {pass_number}" for module, run, pass_number in sorted(entries)]


def render_exactly(lines: Sequence[str]) -> str:
    """The file body: one line per job, ending in a newline, no header."""
    return "".join(f"{line}\n" for line in lines)


def manifest_entry(database: str, job_id: str, output: Mapping[str, Any]) -> dict[str, Any]:
    """One file of a manifest; ``path`` is where the downloader puts it below its destination."""
    _, module, run, chunk, pass_number = parse_job_id(job_id)
    return {
        "job_id": job_id,
        "database": database,
        "module": module,
        "run": run,
        "chunk": chunk,
        "pass": pass_number,
        "name": output["name"],
        "path": f"{module}/{run}_{chunk}_p{pass_number}/{output['name']}",
        "url": output["url"],
        "size": int(output["size"]),
        "adler32": output["adler32"],
    }


async def build_manifest(
    counts: AsyncEngine, dbs: Sequence[FollowedDocs], label: str, selection: Selection, experiment: str | None
) -> dict[str, Any]:
    """The manifest of the selected jobs' registered outputs (URL, size, adler32 of each file); the documents
    come from those the monitor holds, the rest from CouchDB by id."""
    files: list[dict[str, Any]] = []
    for db in dbs:
        selected = await selected_jobs(counts, db.name, label, selection)
        for start in range(0, len(selected), _DOCS_PER_READ):
            docs = await db.get_many(selected[start : start + _DOCS_PER_READ], keep=False)
            for doc_id, doc in docs.items():
                files += [manifest_entry(db.name, doc_id, output) for output in doc.get("outputs") or []]
    files.sort(key=lambda entry: (entry["path"], entry["url"]))
    return manifest_of(label, selection, experiment, files)


def manifest_of(
    label: str, selection: Selection, experiment: str | None, files: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest document of ``files`` (entries of :func:`manifest_entry`, sorted)."""
    return {
        "format": MANIFEST_FORMAT,
        "label": label,
        "experiment": experiment,
        "generated_at": utc_now(),
        "selection": {
            "module": selection.module,
            "run": selection.run,
            "pass": selection.pass_number,
            "status": selection.status,
        },
        "count": len(files),
        "total_size": sum(entry["size"] for entry in files),
        "files": files,
    }
