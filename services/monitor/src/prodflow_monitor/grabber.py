"""The grabber: a label's output files as a manifest, and the label's jobs as an .exactly file.

Both read the ``by_label_mrp`` index (``[label, module, run, pass]`` → status) over a key range, and the
manifest joins it with ``outputs_by_label`` over the same range; nothing else is scanned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import parse_job_id

from prodflow_monitor.views import HIGH

MANIFEST_FORMAT = "prodflow.manifest/1"


@dataclass(frozen=True)
class Selection:
    """Which jobs of a label to take (``None`` = any)."""

    module: str | None = None
    run: int | None = None
    pass_number: int | None = None
    status: str | None = None

    def key_range(self, label: str) -> tuple[list[Any], list[Any]]:
        """The ``[label, module, run, pass]`` range that covers the selection (by key prefix)."""
        prefix: list[Any] = [label]
        for value in (self.module, self.run, self.pass_number):
            if value is None:
                break
            prefix.append(value)
        if len(prefix) == 4:
            return prefix, prefix
        return prefix, [*prefix, HIGH]

    def matches(self, key: Sequence[Any], status: str | None) -> bool:
        """True if a ``by_label_mrp`` row (its key and status) is selected."""
        _, module, run, pass_number = key
        return (
            (self.module is None or module == self.module)
            and (self.run is None or run == self.run)
            and (self.pass_number is None or pass_number == self.pass_number)
            and (self.status is None or status == self.status)
        )


async def _status_rows(db: CouchDatabase, label: str, selection: Selection) -> list[dict[str, Any]]:
    start, end = selection.key_range(label)
    rows = (await db.view("jobs", "by_label_mrp", startkey=start, endkey=end)).rows
    return [row for row in rows if selection.matches(row["key"], row.get("value"))]


async def exactly_lines(dbs: Sequence[CouchDatabase], label: str, selection: Selection) -> list[str]:
    """The .exactly lines of the selected jobs: ``module run pass``, one per (module, run, pass), sorted."""
    entries: set[tuple[str, int, int]] = set()
    for db in dbs:
        for row in await _status_rows(db, label, selection):
            _, module, run, pass_number = row["key"]
            entries.add((str(module), int(run), int(pass_number)))
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
    dbs: Sequence[CouchDatabase], label: str, selection: Selection, experiment: str | None
) -> dict[str, Any]:
    """The manifest of the selected jobs' registered outputs (URL, size, adler32 of each file)."""
    files: list[dict[str, Any]] = []
    for db in dbs:
        selected = {row["id"] for row in await _status_rows(db, label, selection)}
        if not selected:
            continue
        start, end = selection.key_range(label)
        rows = (await db.view("jobs", "outputs_by_label", startkey=start, endkey=end)).rows
        for row in rows:
            if row["id"] in selected:
                files += [manifest_entry(db.name, row["id"], output) for output in row.get("value") or []]
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
