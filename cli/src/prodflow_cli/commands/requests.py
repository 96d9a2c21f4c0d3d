"""``prodflow request new|list|show|edit|submit|approve|reject|cancel|jobs-json``: production requests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.files import read_mapping, write_text
from prodflow_cli.output import Output
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="Production requests: file, list, show, approve, reject.", no_args_is_help=True)

API = "/api/requests"
LIST_COLUMNS = [
    ("id", "id"),
    ("state", "state"),
    ("experiment", "experiment"),
    ("label", "label"),
    ("title", "title"),
    ("requester", "requester"),
    ("updated_at", "updated"),
]
SHOW_FIELDS = [
    ("id", "id"),
    ("title", "title"),
    ("state", "state"),
    ("allowed", "can move to"),
    ("experiment", "experiment"),
    ("kind", "kind"),
    ("label", "label"),
    ("rat_v", "software"),
    ("ratdb_tag", "conditions tag"),
    ("site", "site"),
    ("priority", "priority"),
    ("contacts", "contacts"),
    ("requester", "requester"),
    ("jobs", "jobs"),
    ("jobs_json", "jobs.json"),
    ("campaign_id", "campaign"),
    ("created_at", "filed"),
    ("updated_at", "updated"),
]
NoteOpt = Annotated[str, typer.Option("--note", "-m", help="Why (kept in the request's history).")]


def _form(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    form = read_mapping(path, "a production request")
    form.update({k: v for k, v in overrides.items() if v is not None})
    return form


def show_request(out: Output, request: dict[str, Any]) -> None:
    """A request as fields, modules and history (or the whole document with ``--json``)."""
    out.fields(request, SHOW_FIELDS)
    if out.as_json:
        return
    modules = [
        {"module": m.get("module"), "spec": {k: v for k, v in m.items() if k != "module"}}
        for m in request.get("modules") or []
    ]
    out.table(modules, [("module", "module"), ("spec", "entry")], title="modules")
    out.table(request.get("history") or [], [("at", "at"), ("state", "state"), ("by", "by"), ("note", "note")])


@command(app, "new")
def new(
    form: Annotated[Path, typer.Argument(help="The request as JSON or YAML (FORMATS.md); '-' reads stdin.")],
    label: Annotated[str | None, typer.Option(help="Override the form's label.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Override the form's experiment.")] = None,
    submit: Annotated[bool, typer.Option("--submit", help="Submit it for approval at once (else a draft).")] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="Dry run: the job count and jobs.json it would make; nothing stored.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """File a production request (a draft unless --submit)."""
    body = _form(form, {"label": label, "experiment": experiment})
    client, out = gateway(), output(as_json)
    if preview:
        result = client.post(f"{API}/preview", body)
        if out.as_json:
            out.data(result)
            return
        out.say(f"{result['jobs']} jobs (jobs.json sha256 {result['jobs_json_sha256'][:12]}…); nothing was stored")
        out.table(result["modules"], [("module", "module"), ("mode", "mode"), ("jobs", "jobs"), ("runs", "runs")])
        return
    created = client.post(API, body)
    if submit:
        created = client.post(f"{API}/{segment(created['id'])}/submit", {"note": ""})
    if out.as_json:
        out.data(created)
    else:
        out.say(f"{created['id']} {created['state']}: {created['title']} (label {created['label']})")


@command(app, "list")
def list_requests(
    state: Annotated[str | None, typer.Option(help="draft, submitted, approved, rejected, ...")] = None,
    experiment: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    requester: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Requests you may see, newest first."""
    params = {
        "state": state,
        "experiment": experiment,
        "label": label,
        "requester": requester,
        "limit": limit,
        "offset": offset,
    }
    page = gateway().get(API, params)
    out = output(as_json)
    if out.as_json:
        out.data(page)
        return
    out.table(page["items"], LIST_COLUMNS)
    shown = len(page["items"])
    if page["total"] > offset + shown:
        out.note(f"{shown} of {page['total']} shown; more with --offset {offset + shown}")


@command(app, "show")
def show(request_id: Annotated[str, typer.Argument(help="e.g. req-000042")], as_json: JsonOpt = False) -> None:
    """One request with its modules and history."""
    show_request(output(as_json), gateway().get(f"{API}/{segment(request_id)}"))


@command(app, "edit")
def edit(
    request_id: Annotated[str, typer.Argument()],
    changes: Annotated[Path, typer.Argument(help="The fields to change, as JSON or YAML; '-' reads stdin.")],
    as_json: JsonOpt = False,
) -> None:
    """Change a draft (its requester only)."""
    body = _form(changes, {})
    show_request(output(as_json), gateway().patch(f"{API}/{segment(request_id)}", body))


def _move(request_id: str, verb: str, note: str, as_json: bool) -> None:
    moved = gateway().post(f"{API}/{segment(request_id)}/{verb}", {"note": note})
    out = output(as_json)
    if out.as_json:
        out.data(moved)
    else:
        extra = f"; {moved['jobs']} jobs in jobs.json" if verb == "approve" and moved.get("jobs") else ""
        out.say(f"{moved['id']} is now {moved['state']}{extra}")


@command(app, "submit")
def submit_request(request_id: Annotated[str, typer.Argument()], note: NoteOpt = "", as_json: JsonOpt = False) -> None:
    """draft → submitted (asks a production manager for approval)."""
    _move(request_id, "submit", note, as_json)


@command(app, "approve")
def approve(request_id: Annotated[str, typer.Argument()], note: NoteOpt = "", as_json: JsonOpt = False) -> None:
    """submitted → approved (manager): jobs.json is generated, mailed, and handed to the submitter."""
    _move(request_id, "approve", note, as_json)


@command(app, "reject")
def reject(
    request_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason", "-m", help="Why (required; the requester reads it).")],
    as_json: JsonOpt = False,
) -> None:
    """submitted → rejected (manager)."""
    _move(request_id, "reject", reason, as_json)


@command(app, "cancel")
def cancel(request_id: Annotated[str, typer.Argument()], note: NoteOpt = "", as_json: JsonOpt = False) -> None:
    """draft | submitted | approved → cancelled."""
    _move(request_id, "cancel", note, as_json)


@command(app, "jobs-json")
def jobs_json(
    request_id: Annotated[str, typer.Argument()],
    output_file: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """The approved request's jobs.json, byte for byte."""
    write_text(gateway().text(f"{API}/{segment(request_id)}/jobs.json"), output_file)
