"""``prodflow site list|show|drain|undrain``: where jobs run (the submitter's sites)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodflow_cli.client import segment
from prodflow_cli.files import read_mapping
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="Sites: list, show, drain (submit nothing new), undrain, set, delete.", no_args_is_help=True)

COLUMNS = [
    ("name", "site"),
    ("backend", "backend"),
    ("storage_element", "storage element"),
    ("max_running", "max running"),
    ("drained", "drained"),
    ("counts", "jobs by status"),
]
FIELDS = [
    *COLUMNS,
    ("max_attempts", "max attempts"),
    ("retry_exit_codes", "retry exit codes"),
    ("max_walltime_s", "max walltime (s)"),
    ("queue_order", "queue order"),
    ("options", "options"),
    ("command_template", "command template"),
    ("allow_campaign_commands", "campaign commands allowed"),
    ("source", "defined in"),
]
Site = Annotated[str, typer.Argument(help="The site's name.")]


@command(app, "list")
def list_sites(as_json: JsonOpt = False) -> None:
    """Every site with its job counts."""
    output(as_json).table(gateway().get("/api/sites"), COLUMNS)


@command(app, "show")
def show(name: Site, as_json: JsonOpt = False) -> None:
    """One site."""
    output(as_json).fields(gateway().get(f"/api/sites/{segment(name)}"), FIELDS)


@command(app, "drain")
def drain(name: Site, as_json: JsonOpt = False) -> None:
    """Submit nothing new to the site; running jobs are still monitored."""
    output(as_json).fields(
        gateway().post(f"/api/sites/{segment(name)}/drain"), [("name", "site"), ("drained", "drained")]
    )


@command(app, "undrain")
def undrain(name: Site, as_json: JsonOpt = False) -> None:
    """Submit to the site again."""
    site = gateway().post(f"/api/sites/{segment(name)}/undrain")
    output(as_json).fields(site, [("name", "site"), ("drained", "drained")])


@command(app, "set")
def set_site(
    name: Site,
    spec: Annotated[Path, typer.Argument(help="The site as JSON or YAML: backend, storage_element, limits, ...")],
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a site (admin); its drain state is kept."""
    body = read_mapping(spec, "a site")
    output(as_json).fields(gateway().put(f"/api/sites/{segment(name)}", body), FIELDS)


@command(app, "delete")
def delete(name: Site) -> None:
    """Remove a site that has no jobs waiting or in flight (admin)."""
    gateway().delete(f"/api/sites/{segment(name)}")
    output().say(f"site {name} removed")
