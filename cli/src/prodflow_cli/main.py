"""The ``prodflow`` command."""

from __future__ import annotations

import typer

app = typer.Typer(help="prodflow: production management for particle-physics experiments.", no_args_is_help=True)
