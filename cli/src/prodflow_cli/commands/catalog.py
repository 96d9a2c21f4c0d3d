"""``prodflow catalog list|modules|runs``: what each experiment can produce (request-api's catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodflow_cli.client import segment
from prodflow_cli.errors import CliError
from prodflow_cli.exits import ExitCode
from prodflow_cli.files import read_mapping
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
    body = read_mapping(spec, "a module")
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


@command(app, "set-experiment")
def set_experiment(
    experiment: Annotated[str, typer.Argument()],
    description: Annotated[str, typer.Option()] = "",
    mailing_list: Annotated[
        list[str] | None, typer.Option("--mailing-list", help="Address told of every approval (repeat).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or change an experiment of the catalog (admin)."""
    body = {"description": description, "mailing_list": mailing_list or []}
    saved = gateway().put(f"/api/catalog/{segment(experiment)}", body)
    keys = ["experiment", "description", "mailing_list", "modules", "runs"]
    output(as_json).fields(saved, [(key, key.replace("_", " ")) for key in keys])


def _span(text: str) -> dict[str, object]:
    """``FIRST-LAST[:CONDITIONS]`` or ``RUN[:CONDITIONS]``."""
    runs, _, conditions = text.partition(":")
    first, _, last = runs.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise CliError(f"expected FIRST-LAST[:CONDITIONS], got {text!r}", ExitCode.USAGE)
    return {"first": int(first), "last": int(last or first), "conditions": conditions}


@command(app, "add-runs")
def add_runs(
    experiment: Annotated[str, typer.Argument()],
    spans: Annotated[list[str], typer.Argument(help="FIRST-LAST[:CONDITIONS] or RUN[:CONDITIONS] (repeat).")],
    replace: Annotated[bool, typer.Option("--replace", help="Drop every run not given here.")] = False,
) -> None:
    """Add detector runs (with their conditions tag) to the run list (admin)."""
    body = {"spans": [_span(text) for text in spans], "replace": replace}
    written = gateway().put(f"/api/catalog/{segment(experiment)}/runs", body)
    output().say(f"{written['runs']} runs written to the run list of {experiment}")


@command(app, "delete-run")
def delete_run(experiment: Annotated[str, typer.Argument()], run: Annotated[int, typer.Argument(min=1)]) -> None:
    """Remove a run from the run list (admin)."""
    gateway().delete(f"/api/catalog/{segment(experiment)}/runs/{run}")
    output().say(f"run {run} removed from {experiment}")
