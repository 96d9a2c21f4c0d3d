"""The ``prodflow`` command: the embedded runner and the operator commands, all through the gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from prodflow_cli.commands import (
    audit,
    auth,
    campaigns,
    catalog,
    cycles,
    events,
    grab,
    health,
    jobs,
    labels,
    notifications,
    provenance,
    requests,
    sites,
    tokens,
    up,
    webhooks,
)
from prodflow_cli.exits import describe
from prodflow_cli.session import State, begin

app = typer.Typer(
    help="prodflow: production management for particle-physics experiments.\n\n"
    "Talks to the gateway at PRODFLOW_URL with the token PRODFLOW_TOKEN (or what 'prodflow login' saved).",
    epilog="Exit codes:\n\n" + describe().replace("\n", "\n\n"),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", help="Gateway URL (overrides PRODFLOW_URL).")] = None,
    token: Annotated[str | None, typer.Option("--token", help="API token (overrides PRODFLOW_TOKEN).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output for every command.")] = False,
    timeout: Annotated[float, typer.Option("--timeout-s", help="HTTP timeout per call, in seconds.")] = 60.0,
) -> None:
    """prodflow: production management for particle-physics experiments."""
    current = State(url=url, token=token, as_json=as_json, timeout_s=timeout)
    begin(current)
    ctx.call_on_close(current.close)


for module in (up, auth, health, events, grab, audit, provenance):
    app.add_typer(module.app)
# Each group answers to its singular and (hidden) plural name: 'prodflow request list' = 'prodflow requests list'.
for group, name in (
    (requests.app, "request"),
    (campaigns.app, "campaign"),
    (jobs.app, "jobs"),
    (labels.app, "label"),
    (cycles.app, "cycle"),
    (sites.app, "site"),
    (catalog.app, "catalog"),
    (tokens.app, "tokens"),
    (notifications.app, "notifications"),
    (webhooks.app, "webhook"),
):
    app.add_typer(group, name=name)
    alias = name[:-1] if name.endswith("s") else name + "s"
    app.add_typer(group, name=alias, hidden=True)
