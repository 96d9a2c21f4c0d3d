"""``prodflow jobs list|show``: job documents as the monitor sees them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="Jobs: list with filters, show one with its history.", no_args_is_help=True)

API = "/api/jobs"
COLUMNS = [
    ("_id", "job"),
    ("status", "status"),
    ("module", "module"),
    ("run", "run"),
    ("chunk", "chunk"),
    ("pass", "pass"),
    ("attempt", "attempt"),
    ("site", "site"),
    ("updated_at", "updated"),
]
FIELDS = [
    ("_id", "job"),
    ("status", "status"),
    ("experiment", "experiment"),
    ("label", "label"),
    ("module", "module"),
    ("run", "run"),
    ("chunk", "chunk"),
    ("pass", "pass"),
    ("attempt", "attempt"),
    ("events", "events"),
    ("seed", "seed"),
    ("site", "site"),
    ("backend", "backend"),
    ("database", "database"),
    ("campaign_id", "campaign"),
    ("request_id", "request"),
    ("parent", "parent"),
    ("created_at", "created"),
    ("updated_at", "updated"),
]


@command(app, "list")
def list_jobs(
    label: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="waiting, submitted, running, completed, failed, ...")] = None,
    module: Annotated[str | None, typer.Option()] = None,
    run: Annotated[int | None, typer.Option()] = None,
    pass_number: Annotated[int | None, typer.Option("--pass")] = None,
    site: Annotated[str | None, typer.Option()] = None,
    database: Annotated[str | None, typer.Option(help="data-production or data-processing")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many jobs (pages of 1000 are fetched as needed).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Jobs matching the filters, in the order of the monitor's views."""
    params: dict[str, Any] = {
        "label": label,
        "status": status,
        "module": module,
        "run": run,
        "pass": pass_number,
        "site": site,
        "database": database,
    }
    client = gateway()
    jobs, more = client.items(API, params, limit)
    out = output(as_json)
    out.table(jobs, COLUMNS)
    if more and not out.as_json:
        out.note(f"{len(jobs)} shown; more with --limit")


@command(app, "show")
def show(
    job_id: Annotated[str, typer.Argument(help="job:<label>:<module>:<run>:<chunk>:p<pass>")], as_json: JsonOpt = False
) -> None:
    """One job with its backend state, outputs and history."""
    job = gateway().get(f"{API}/{segment(job_id)}")
    out = output(as_json)
    out.fields(job, FIELDS)
    if not out.as_json:
        out.table(
            job.get("outputs") or [], [("name", "output"), ("url", "url"), ("size", "bytes"), ("adler32", "adler32")]
        )
        out.table(job.get("history") or [], [("at", "at"), ("status", "status"), ("reason", "reason")])
