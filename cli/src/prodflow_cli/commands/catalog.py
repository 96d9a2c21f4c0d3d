"""``prodflow catalog list|modules|runs``: what each experiment can produce (request-api's catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodflow_cli.client import segment
from prodflow_cli.errors import CliError
from prodflow_cli.exits import ExitCode
from prodflow_cli.files import read_document
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="The module and run catalog of each experiment.", no_args_is_help=True)


@command(app, "list")
def list_experiments(as_json: JsonOpt = False) -> None:
    """The experiments you may see, with their modules and run counts."""
    rows = gateway().get("/api/catalog")
    output(as_json).table(
        rows,
        [
            ("experiment", "experiment"),
            ("description", "description"),
            ("modules", "modules"),
            ("runs", "runs"),
            ("mailing_list", "mailing list"),
        ],
    )


@command(app, "modules")
def modules(experiment: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """An experiment's modules: event modes, kinds, template parameters and the command a job runs."""
    rows = gateway().get(f"/api/catalog/{segment(experiment)}/modules")
    output(as_json).table(
        rows,
        [
            ("name", "module"),
            ("event_modes", "event modes"),
            ("kinds", "kinds"),
            ("template_params", "template"),
            ("default_ev_per_run", "events/job"),
            ("command", "command"),
        ],
    )


@command(app, "runs")
def runs(
    experiment: Annotated[str, typer.Argument()],
    first: Annotated[int | None, typer.Option(min=1)] = None,
    last: Annotated[int | None, typer.Option(min=1)] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """The run list with each run's detector-conditions tag."""
    page = gateway().get(f"/api/catalog/{segment(experiment)}/runs", {"first": first, "last": last, "limit": limit})
    out = output(as_json)
    if out.as_json:
        out.data(page)
        return
    out.table(page["items"], [("run", "run"), ("conditions", "conditions")])
    if page["total"] > len(page["items"]):
        out.note(f"{len(page['items'])} of {page['total']} runs shown")


@command(app, "set-module")
def set_module(
    experiment: Annotated[str, typer.Argument()],
    module: Annotated[str, typer.Argument()],
    spec: Annotated[Path, typer.Argument(help="The module as JSON or YAML (event_modes, kinds, command, ...).")],
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a module (admin)."""
    body = read_document(spec)
    if not isinstance(body, dict):
        raise CliError(f"{spec} must hold a module (a mapping)", ExitCode.USAGE)
    saved = gateway().put(f"/api/catalog/{segment(experiment)}/modules/{segment(module)}", body)
    out = output(as_json)
    if out.as_json:
        out.data(saved)
    else:
        out.say(f"{experiment}/{module}: {', '.join(saved['event_modes'])}; runs: {saved['command']}")


@command(app, "delete-module")
def delete_module(experiment: Annotated[str, typer.Argument()], module: Annotated[str, typer.Argument()]) -> None:
    """Remove a module (admin)."""
    gateway().delete(f"/api/catalog/{segment(experiment)}/modules/{segment(module)}")
    output().say(f"{experiment}/{module} removed")
