"""A Snakemake run of a cycle as a :class:`~prodflow_core.provenance.crate.CrateRecord`.

The Snakefile is the workflow (its bytes go into the crate), the run is one ``CreateAction`` (agent: who asked for
it; object: config.json, the run's parameters and the files its jobs read that no job of the run made; result:
every file its jobs made), and each Snakemake job is a ``CreateAction`` of its rule. Data files are referenced by
``file://`` URI with the size and adler32 recorded when their job finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prodflow_core.provenance.crate import (
    CrateAction,
    CrateAgent,
    CrateFile,
    CrateRecord,
    CrateSoftware,
    CrateWorkflow,
)

from prodflow_cycle_runner.lineage import iso
from prodflow_cycle_runner.models import CycleRow, FileRow, RunRow, StepRow

SNAKEFILE = "workflow/Snakefile"
_STATUS = {"succeeded": "completed", "running": "active", "queued": "potential"}


def run_record(
    cycle: CycleRow, run: RunRow, steps: list[StepRow], sources: list[FileRow], snapshot: dict[str, Any]
) -> CrateRecord:
    """The crate of ``run``: ``steps`` its finished jobs, ``sources`` the rows of the inputs no job of it made."""
    cycle_dir = Path(cycle.path)
    made = {o["path"]: o for step in steps for o in step.outputs}
    files = {path: _file(cycle_dir, path, o.get("size"), o.get("adler32")) for path, o in made.items()}
    for row in sources:
        files.setdefault(row.path, _file(cycle_dir, row.path, row.size, row.adler32))
    for step in steps:  # inputs without any record (none expected: every input gets one)
        for path in step.inputs:
            files.setdefault(path, _file(cycle_dir, path, None, None))
    config = CrateFile(
        "config.json",
        "config.json",
        content=_read(cycle_dir / "config.json"),
        encoding_format="application/json",
        description=f"the cycle's config.json (SHA-256 {snapshot.get('config_sha256', '?')} when the run started)",
    )
    software = [_pin(p) for p in snapshot.get("pins", [])]
    rules = sorted({s.rule for s in steps})
    software += [CrateSoftware(f"#rule-{r}", r, description=f"the Snakemake rule {r}") for r in rules]
    agent = CrateAgent(f"#person-{run.requested_by}", run.requested_by)
    dataflow = cycle.checkouts.get("dataflow", {})
    workflow = CrateWorkflow(
        file=CrateFile(SNAKEFILE, "Snakefile", content=_read(cycle_dir / SNAKEFILE), description="the dataflow"),
        version=dataflow.get("commit"),
        url=dataflow.get("url"),
        software=[s.id for s in software if s.id.startswith("#software-")],
        tools=[f"#rule-{r}" for r in rules],
    )
    inputs = ["config.json", *(files[p].id for p in sorted({p for s in steps for p in s.inputs} - set(made)))]
    main = CrateAction(
        f"#{run.id}",
        f"Snakemake run {run.id} of cycle {cycle.name}",
        instrument=SNAKEFILE,
        agent=agent.id,
        started_at=iso(run.started_at),
        ended_at=iso(run.finished_at),
        inputs=inputs,
        outputs=[files[p].id for p in sorted(made)],
        parameters={k: str(v) for k, v in run.request.items()} | {"config_sha256": snapshot.get("config_sha256", "")},
        status=_STATUS.get(run.state, "failed"),  # type: ignore[arg-type]
        description=run.message or None,
        error=run.message or None,
    )
    jobs = [
        CrateAction(
            f"#{run.id}-job-{s.jobid}",
            f"{s.rule} (job {s.jobid}{_wildcards(s.wildcards)})",
            instrument=f"#rule-{s.rule}",
            agent=agent.id,
            started_at=iso(s.started_at),
            ended_at=iso(s.finished_at),
            inputs=[files[p].id for p in s.inputs],
            outputs=[files[o["path"]].id for o in s.outputs],
        )
        for s in steps
    ]
    return CrateRecord(
        name=f"Snakemake run {run.id} of cycle {cycle.name}",
        description=f"Workflow Run RO-Crate of a run of LEGEND production cycle {cycle.name}; data files are "
        "referenced by file:// URI on the file system that holds the cycle, with their size and adler32",
        actions=[main, *jobs],
        files=[config, *(files[p] for p in sorted(files))],
        software=software,
        agents=[agent],
        workflow=workflow,
        date_published=iso(run.finished_at or run.started_at or run.created_at),
    )


def _file(cycle_dir: Path, path: str, size: int | None, adler32: str | None) -> CrateFile:
    absolute = Path(path) if path.startswith("/") else cycle_dir / path
    return CrateFile(absolute.as_uri(), path.rsplit("/", 1)[-1], size=size, adler32=adler32, path=path)


def file_id(cycle: CycleRow, path: str) -> str:
    """The crate ``@id`` of a cycle file (its ``file://`` URI)."""
    return _file(Path(cycle.path), path, None, None).id


def _pin(pin: dict[str, Any]) -> CrateSoftware:
    version = pin.get("commit") if pin.get("kind") == "git" else pin.get("version")
    source = pin.get("source")
    return CrateSoftware(
        f"#software-{pin['name']}",
        pin["name"],
        version=version,
        url=source if pin.get("kind") == "git" else None,
        description=f"{pin.get('kind')} pin" + (f" ({source})" if source and pin.get("kind") != "git" else ""),
    )


def _wildcards(wildcards: dict[str, Any]) -> str:
    return "".join(f", {k}={v}" for k, v in wildcards.items())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
