"""``prodflow audit``: the state-changing calls made through the gateway, newest first (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer()

API = "/api/audit"
COLUMNS = [
    ("at", "at"),
    ("user", "user"),
    ("token_id", "token"),
    ("method", "method"),
    ("path", "path"),
    ("target", "target"),
    ("experiment", "experiment"),
    ("status", "status"),
    ("request_id", "request"),
]


@command(app)
def audit(
    user: Annotated[str | None, typer.Option(help="Only this user's calls.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Calls at or after (ISO 8601, UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Calls before (ISO 8601, UTC).")] = None,
    path: Annotated[str | None, typer.Option(help="Only paths starting with this (/api/requests).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many entries (pages of 1000 are fetched as needed).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Who changed what through the gateway: every POST, PUT, PATCH and DELETE, newest first (admin)."""
    params: dict[str, Any] = {
        "user": user,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "path": path,
    }
    client = gateway()
    entries, more = client.items(API, params, limit)
    out = output(as_json)
    out.table(entries, COLUMNS)
    if more and not out.as_json:
        out.note(f"{len(entries)} shown; more with --limit")
