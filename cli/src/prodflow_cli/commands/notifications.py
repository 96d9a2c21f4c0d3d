"""``prodflow notifications show|set|lists|set-lists``: which mails reach you, and an experiment's lists."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(
    help="Mail: your address and the kinds you get (approval, outcome, digest); an experiment's lists (managers).",
    no_args_is_help=True,
)

MINE = [
    ("user", "user"),
    ("address", "address"),
    ("approval", "approval"),
    ("outcome", "outcome"),
    ("digest", "digest"),
]
LISTS = [
    ("experiment", "experiment"),
    ("mailing_list", "mailing list"),
    ("support_list", "support list"),
    ("digest_to", "digests go to"),
    ("opted_out", "opted out"),
]
Experiment = Annotated[str, typer.Argument(help="The experiment.")]


class Switch(StrEnum):
    """A kind of mail on or off."""

    ON = "on"
    OFF = "off"


def _switch(help_text: str) -> Any:
    return typer.Option(help=help_text, case_sensitive=False)


@command(app, "show")
def show(as_json: JsonOpt = False) -> None:
    """Your address and the kinds of mail it gets."""
    output(as_json).fields(gateway().get("/api/notifications/me"), MINE)


@command(app, "set")
def set_mine(
    address: Annotated[str | None, typer.Option(help="The address your mail reaches.")] = None,
    approval: Annotated[Switch | None, _switch("Approval mails (jobs.json attached).")] = None,
    outcome: Annotated[Switch | None, _switch("A request completed, failed, or its campaign was cancelled.")] = None,
    digest: Annotated[Switch | None, _switch("Failure digests of the support list.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn kinds of mail on or off (only those given change)."""
    body: dict[str, Any] = {} if address is None else {"address": address}
    for kind, value in (("approval", approval), ("outcome", outcome), ("digest", digest)):
        if value is not None:
            body[kind] = value is Switch.ON
    output(as_json).fields(gateway().put("/api/notifications/me", body), MINE)


@command(app, "lists")
def lists(experiment: Experiment, as_json: JsonOpt = False) -> None:
    """An experiment's mailing and support lists, and who on them turned a kind off (managers)."""
    output(as_json).fields(gateway().get(f"/api/notifications/experiments/{segment(experiment)}"), LISTS)


@command(app, "set-lists")
def set_lists(
    experiment: Experiment,
    mailing: Annotated[list[str] | None, typer.Option("--mailing", help="The mailing list (repeat).")] = None,
    support: Annotated[list[str] | None, typer.Option("--support", help="The support list (repeat).")] = None,
    support_is_mailing: Annotated[
        bool, typer.Option("--support-is-mailing", help="Send digests to the mailing list.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change an experiment's lists (managers); only those given change."""
    body: dict[str, Any] = {}
    if mailing:
        body["mailing_list"] = mailing
    if support:
        body["support_list"] = support
    elif support_is_mailing:
        body["support_list"] = None
    path = f"/api/notifications/experiments/{segment(experiment)}"
    output(as_json).fields(gateway().put(path, body), LISTS)
