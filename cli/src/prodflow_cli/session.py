"""What every command shares: the global options, the gateway client, the output, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from prodflow_cli import config
from prodflow_cli.client import Gateway
from prodflow_cli.errors import CliError
from prodflow_cli.output import Output

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


@dataclass
class State:
    """The global options (``prodflow --url ... --token ... --json COMMAND``)."""

    url: str | None = None
    token: str | None = None
    as_json: bool = False
    timeout_s: float = 60.0
    clients: list[Gateway] = field(default_factory=list)

    def close(self) -> None:
        """Close the clients the command opened."""
        for client in self.clients:
            client.close()
        self.clients.clear()


_current = State()


def begin(current: State) -> None:
    """Make ``current`` the global options of the command about to run (called by the app's callback)."""
    global _current
    _current = current


def state() -> State:
    """The global options of the running command."""
    return _current


def output(as_json: bool = False) -> Output:
    """The output of the running command: JSON if ``--json`` was given here or globally."""
    return Output(as_json=as_json or state().as_json)


def gateway() -> Gateway:
    """A client of the configured gateway, closed when the command ends."""
    current = state()
    client = Gateway(config.resolve(current.url, current.token), timeout_s=current.timeout_s)
    current.clients.append(client)
    return client


def command(app: typer.Typer, name: str | None = None, **options: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a command whose :class:`CliError` becomes one line on stderr and its exit code."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except (CliError, config.ConfigError) as exc:
                error = exc if isinstance(exc, CliError) else CliError(str(exc))
                output(bool(kwargs.get("as_json"))).error(error.line(), error.document())
                raise typer.Exit(int(error.exit_code)) from None

        app.command(name, **options)(run)
        return fn

    return register
