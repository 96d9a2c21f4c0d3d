"""``prodflow up``: the whole system on this machine (the embedded runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="Folder for databases, logs and the token.")
    ] = Path(".data"),
    port: Annotated[int, typer.Option(help="Gateway port; services take the next four.")] = 8000,
    couch_port: Annotated[int, typer.Option(help="Port of the embedded CouchDB-API server.")] = 5984,
    host: Annotated[str, typer.Option(help="Address to bind every process to.")] = "127.0.0.1",
    member_accounts: Annotated[
        bool,
        typer.Option(
            "--member-accounts",
            help="Give each service its own CouchDB account, a member of the databases it uses (CouchDB 3; "
            "PRODFLOW_COUCHDB_URL, or PRODFLOW_COUCHDB_USER/_PASSWORD, must be a server admin's).",
        ),
    ] = False,
) -> None:
    """Run the whole system on this machine until Ctrl-C."""
    from prodflow_cli.runner import EmbeddedSystem, run_until_interrupted  # only 'up' needs the process machinery

    system = EmbeddedSystem(
        data_dir=data_dir.resolve(), host=host, port=port, couch_port=couch_port, member_accounts=member_accounts
    )
    raise typer.Exit(run_until_interrupted(system, say=lambda line: typer.echo(line)))
