"""``prodflow campaign submit|list|show|exactly|cancel``: submitted jobs.json files (the submitter)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.files import read_mapping, read_run_list, write_text
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="Campaigns: submit a jobs.json to a site, list, show, cancel.", no_args_is_help=True)

API = "/api/campaigns"
COLUMNS = [
    ("id", "id"),
    ("label", "label"),
    ("experiment", "experiment"),
    ("database", "database"),
    ("site", "site"),
    ("pass", "pass"),
    ("jobs", "jobs"),
    ("state", "state"),
    ("created_at", "created"),
]
FIELDS = [
    *COLUMNS,
    ("labels", "labels"),
    ("request_id", "request"),
    ("kind", "kind"),
    ("rat_v", "software"),
    ("ratdb_tag", "conditions tag"),
    ("created", "documents created"),
    ("counts", "jobs by status"),
    ("created_by", "by"),
]


@command(app, "submit")
def submit(
    jobs_file: Annotated[Path, typer.Argument(metavar="JOBS.JSON", help="SNO+ jobs.json (or YAML); '-' reads stdin.")],
    site: Annotated[str | None, typer.Option(help="Site to run on (default: the submitter's default site).")] = None,
    database: Annotated[
        str | None, typer.Option(help="data-production or data-processing (default: from the file's kind).")
    ] = None,
    pass_number: Annotated[int | None, typer.Option("--pass", min=1, help="Default: the label's next pass.")] = None,
    label: Annotated[str | None, typer.Option(help="Label of modules that name none.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Default: the file's experiment.")] = None,
    runs: Annotated[
        Path | None, typer.Option("--runs", "-L", help="Run list file for run-by-run modules (production_submit -L).")
    ] = None,
    ratdb_tag: Annotated[str | None, typer.Option("--ratdb-tag", "-t", help="Frozen conditions tag.")] = None,
    request_id: Annotated[str | None, typer.Option("--request", help="The production request it belongs to.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be created; write nothing.")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Re-sending with the same key never creates twice.")
    ] = None,
    exactly: Annotated[
        Path | None, typer.Option("--exactly", "-o", help="Append the campaign's .exactly lines to this file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a jobs.json: one job document per (module, run, pass), its .exactly, jobs handed to the site."""
    body: dict[str, Any] = {"jobs": read_mapping(jobs_file, "a jobs.json")}
    options = {
        "site": site,
        "database": database,
        "pass_number": pass_number,
        "label": label,
        "experiment": experiment,
        "ratdb_tag": ratdb_tag,
        "request_id": request_id,
        "run_list": read_run_list(runs) if runs else None,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    client, out = gateway(), output(as_json)
    response = client.request("POST", API, json_body=body, params={"dry_run": dry_run or None}, headers=headers)
    result: dict[str, Any] = response.json()
    if out.as_json:
        out.data(result)
    elif dry_run:
        out.say(f"would create {result['jobs']} jobs of {', '.join(result['labels'])} (pass {result['pass']})")
        out.say(f"on site {result['site']} in {result['database']}; nothing was written")
        out.table(result["modules"], [("module", "module"), ("label", "label"), ("jobs", "jobs"), ("events", "events")])
    else:
        again = "" if response.status_code == 201 else " (submitted before: nothing new but what was missing)"
        out.say(f"{result['id']}: {result['jobs']} jobs of {result['label']} pass {result['pass']} on {result['site']}")
        out.say(f"{result['created']} documents created{again}")
    if exactly is not None and not dry_run:
        lines = client.text(f"{API}/{segment(result['id'])}/exactly")
        with exactly.open("a", encoding="utf-8") as handle:
            handle.write(lines)
        out.note(f"appended {lines.count(chr(10))} lines to {exactly}")


@command(app, "list")
def list_campaigns(
    label: Annotated[str | None, typer.Option()] = None,
    experiment: Annotated[str | None, typer.Option()] = None,
    request_id: Annotated[str | None, typer.Option("--request")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Campaigns, newest first."""
    params = {"label": label, "experiment": experiment, "request_id": request_id, "limit": limit}
    output(as_json).table(gateway().get(API, params), COLUMNS)


@command(app, "show")
def show(campaign_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """One campaign with its jobs counted by status."""
    output(as_json).fields(gateway().get(f"{API}/{segment(campaign_id)}"), FIELDS)


@command(app, "exactly")
def exactly_file(
    campaign_id: Annotated[str, typer.Argument()],
    output_file: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """The campaign's .exactly file (module run pass per line)."""
    write_text(gateway().text(f"{API}/{segment(campaign_id)}/exactly"), output_file)


@command(app, "cancel")
def cancel(
    campaign_id: Annotated[str, typer.Argument()],
    job: Annotated[list[str] | None, typer.Option("--job", help="Only these job ids (repeat).")] = None,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cancel the campaign's jobs that are not final (at their backends too)."""
    result = gateway().post(f"{API}/{segment(campaign_id)}/cancel", {"job_ids": job, "reason": reason})
    show_operation(result, "cancelled", as_json)


def show_operation(result: dict[str, Any], verb: str, as_json: bool) -> None:
    """The outcome of a bulk operation."""
    out = output(as_json)
    if out.as_json:
        out.data(result)
        return
    out.say(f"{len(result['job_ids'])} jobs {verb}; {len(result.get('skipped') or [])} skipped (not applicable)")
    if result.get("campaign"):
        out.say(f"new campaign {result['campaign']} (pass {result.get('pass')})")
